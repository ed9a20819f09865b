"""Which TFLite builtin ops LiteRT's GPU delegate takes, for `check`'s `tflite.gpu_delegate` rule.

Read from the delegate's own parser table, `NewOperationParser` in
`tensorflow/lite/delegates/gpu/common/model_builder.cc` (tensorflow/tensorflow @ 9a5c30170e25): the
builtin ops it returns a parser for, with the newest op version each parser accepts (None: no version
check). DEQUANTIZE and QUANTIZE are taken only when the app enables the delegate's quantized models,
so they count as not taken here. An op outside this table runs on the CPU, and each switch between the
delegate and the CPU costs a synchronization: the rule lists them so a deployment knows before it
profiles on a phone. Per-op conditions the parsers also check (MEAN only over height and width,
DEPTHWISE_CONV_2D with a multiplier only on one channel, DIV/POW/SQUARED_DIFFERENCE with two runtime
inputs) are not modelled: a listed op can still fall back.
"""

from __future__ import annotations

SOURCE = "tensorflow/lite/delegates/gpu/common/model_builder.cc @ 9a5c30170e25"

#: builtin op -> newest version its parser accepts (None: not checked)
GPU_OPS: dict[str, int | None] = {
    "ABS": 2, "ADD": 2, "AVERAGE_POOL_2D": 2, "CONCATENATION": 2, "CONV_2D": 3, "COS": 2, "DEPTHWISE_CONV_2D": 3,
    "DIV": 2, "FULLY_CONNECTED": 4, "HARD_SWISH": None, "LEAKY_RELU": 2, "LOG": 2, "LOGISTIC": 2, "LSTM": 2,
    "MAXIMUM": 2, "MAX_POOL_2D": 2, "MEAN": None, "MINIMUM": 2, "MIRROR_PAD": 2, "MUL": 3, "PAD": 2, "POW": 2,
    "PRELU": 1, "RELU": 2, "RELU6": 2, "RESHAPE": 1, "RESIZE_BILINEAR": 3, "RESIZE_NEAREST_NEIGHBOR": 3,
    "RSQRT": 2, "SIN": 2, "SLICE": 2, "SOFTMAX": 2, "SPACE_TO_DEPTH": 2, "SQRT": 2, "SQUARE": 2,
    "SQUARED_DIFFERENCE": 2, "STRIDED_SLICE": 2, "SUB": 2, "TANH": 2, "TRANSPOSE": 2, "TRANSPOSE_CONV": 2,
}  # fmt: skip


def not_taken(ops: list[str]) -> dict[str, int]:
    """{op: how many times it occurs} for the ops of `ops` the GPU delegate does not take."""
    out: dict[str, int] = {}
    for op in ops:
        if op not in GPU_OPS:
            out[op] = out.get(op, 0) + 1
    return out
