"""Rewrites of the written subgraph, as the TFLite converter makes them: BatchNormalization's
multiply and add folded into the weights and bias of the op before it, RELU/RELU6 fused into the op
they follow, and float16 weights.

A fold never changes a constant in place: constants are shared between ops that hold equal numbers
(zero biases above all), so the folded weights become constants of their own.
"""

from __future__ import annotations

import numpy as np

from modeltool.exporters.litert.context import FUSED
from modeltool.exporters.litert.flatbuffer import LiteModel, Operator

#: op -> (weights input, axis of the output channels in the weights, bias input)
FOLDABLE = {"CONV_2D": (1, 0, 2), "DEPTHWISE_CONV_2D": (1, 3, 2), "FULLY_CONNECTED": (1, 0, 2),
            "TRANSPOSE_CONV": (1, 0, 3)}  # fmt: skip
#: ops whose options carry a fused activation TFLite's kernels apply
FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
           "AVERAGE_POOL_2D", "MAX_POOL_2D"}  # fmt: skip
ACTIVATIONS = {"RELU": FUSED["RELU"], "RELU6": FUSED["RELU6"]}


def run_all(model: LiteModel) -> list[str]:
    """Every rewrite in order (transposes cancelled first, so BatchNormalization after a
    channels-first convolution folds); returns what was done, for the report."""
    rewrites = (
        (cancel_transposes, "pairs of transposes between channels-first layers cancelled"),
        (fold_padding, "zero paddings folded into the convolution after them (SAME)"),
        (fold_batchnorm, "BatchNormalization scale/shift pairs folded into the preceding op"),
        (fuse_activations, "activations fused into the preceding op"),
    )
    done = []
    for rewrite, what in rewrites:
        count = rewrite(model)
        if count:
            done.append(f"{count} {what}")
    return done


def _single_use(model: LiteModel, tensor: int, consumers: dict[int, list[Operator]]) -> bool:
    return len(consumers.get(tensor, [])) == 1 and tensor not in model.outputs


def _vector(model: LiteModel, op: Operator, channels: int) -> tuple[np.ndarray, int] | None:
    """The per-channel (or scalar) constant operand of a binary op and the other operand."""
    for k in (1, 0):
        value = model.value(op.inputs[k])
        if value is not None and value.dtype == np.float32 and value.size in (1, channels) and value.ndim <= 1:
            return value.reshape(-1), op.inputs[1 - k]
    return None


def fold_batchnorm(model: LiteModel) -> int:
    """MUL then ADD by per-output-channel constants right after a conv / FC op fold into it (one
    sweep per kind: a folded op's output becomes the MUL's, so the ADD after it folds next)."""
    count = 0
    for kind in ("MUL", "ADD"):
        producers, consumers = model.producers(), model.consumers()
        removed: set[int] = set()
        for op in model.operators:
            if op.op != kind or op.options is None or op.options.fusedActivationFunction != FUSED["NONE"]:
                continue
            first = producers.get(op.inputs[0]) or producers.get(op.inputs[1])
            if first is None or first.op not in FOLDABLE or first.options.fusedActivationFunction != FUSED["NONE"]:
                continue
            w_in, axis, b_in = FOLDABLE[first.op]
            weights, bias = model.value(first.inputs[w_in]), model.value(first.inputs[b_in])
            if weights is None or bias is None or weights.dtype != np.float32:
                continue
            found = _vector(model, op, bias.size)
            if found is None or found[1] != first.outputs[0] or not _single_use(model, found[1], consumers):
                continue
            vector = np.broadcast_to(found[0], bias.shape).astype(np.float32)
            if kind == "MUL":
                shape = [1] * weights.ndim
                shape[axis] = -1
                scaled = (weights * vector.reshape(shape)).astype(np.float32)
                first.inputs[w_in] = model.constant("folded_kernel", scaled)
                first.inputs[b_in] = model.constant("folded_bias", (bias * vector).astype(np.float32))
                count += 1
            else:
                first.inputs[b_in] = model.constant("folded_bias", (bias + vector).astype(np.float32))
            first.outputs[0] = op.outputs[0]
            producers[op.outputs[0]] = first
            removed.add(id(op))
        model.operators = [op for op in model.operators if id(op) not in removed]
    return count


def cancel_transposes(model: LiteModel) -> int:
    """TRANSPOSE then TRANSPOSE back (a channels-first layer's output read by the next one's input)
    become nothing: readers of the second read the first's input."""
    count = 0
    producers, consumers = model.producers(), model.consumers()
    replaced: dict[int, int] = {}
    removed: set[int] = set()
    for op in model.operators:
        if op.op != "TRANSPOSE":
            continue
        first = producers.get(op.inputs[0])
        if first is None or first.op != "TRANSPOSE" or id(first) in removed:
            continue
        p1, p2 = model.value(first.inputs[1]), model.value(op.inputs[1])
        if p1 is None or p2 is None or list(p1[p2]) != list(range(len(p1))) or op.outputs[0] in model.outputs:
            continue
        replaced[op.outputs[0]] = first.inputs[0]
        removed.add(id(op))
        if len(consumers.get(first.outputs[0], [])) == 1 and first.outputs[0] not in model.outputs:
            removed.add(id(first))
        count += 1
    model.operators = [op for op in model.operators if id(op) not in removed]
    for op in model.operators:
        op.inputs = [replaced.get(t, t) for t in op.inputs]
    return count


def fold_padding(model: LiteModel) -> int:
    """A PAD of zeros on height and width right before a VALID convolution becomes the
    convolution's SAME padding when it pads exactly as SAME would (MobileNet's `correct_pad`
    before its strided convolutions)."""
    from modeltool.exporters.direct.conv import same_pads
    from modeltool.exporters.litert.conv import PADDING

    count = 0
    producers, consumers = model.producers(), model.consumers()
    removed: set[int] = set()
    for op in model.operators:
        if op.op not in ("CONV_2D", "DEPTHWISE_CONV_2D") or op.options.padding != PADDING["valid"]:
            continue
        pad = producers.get(op.inputs[0])
        if pad is None or pad.op != "PAD" or not _single_use(model, op.inputs[0], consumers):
            continue
        pairs, weights = model.value(pad.inputs[1]), model.value(op.inputs[1])
        shape = model.tensors[pad.inputs[0]].shape
        if pairs is None or weights is None or len(shape) != 4 or any(d is None for d in shape[1:3]):
            continue
        if pairs.shape != (4, 2) or pairs[0].any() or pairs[3].any():
            continue
        o = op.options
        same = [same_pads(int(shape[1]), weights.shape[1], o.strideH, o.dilationHFactor),
                same_pads(int(shape[2]), weights.shape[2], o.strideW, o.dilationWFactor)]  # fmt: skip
        if [tuple(int(v) for v in pairs[1]), tuple(int(v) for v in pairs[2])] != same:
            continue
        op.inputs[0] = pad.inputs[0]
        o.padding = PADDING["same"]
        removed.add(id(pad))
        count += 1
    model.operators = [op for op in model.operators if id(op) not in removed]
    return count


def fuse_activations(model: LiteModel) -> int:
    count = 0
    producers, consumers = model.producers(), model.consumers()
    removed: set[int] = set()
    for op in model.operators:
        if op.op not in ACTIVATIONS:
            continue
        first = producers.get(op.inputs[0])
        if first is None or first.op not in FUSABLE or first.options is None:
            continue
        if first.options.fusedActivationFunction != FUSED["NONE"] or not _single_use(model, op.inputs[0], consumers):
            continue
        first.options.fusedActivationFunction = ACTIVATIONS[op.op]
        first.outputs[0] = op.outputs[0]
        producers[op.outputs[0]] = first
        removed.add(id(op))
        count += 1
    model.operators = [op for op in model.operators if id(op) not in removed]
    return count


def float16_weights(model: LiteModel) -> int:
    """Every float32 constant that is not a scalar stored as float16 and read through a DEQUANTIZE
    op (what the TFLite converter's float16 quantization writes); returns how many."""
    dequantized: dict[int, int] = {}
    head: list[Operator] = []
    for op in model.operators:
        for k, t in enumerate(op.inputs):
            value = model.value(t) if t >= 0 else None
            if value is None or value.dtype != np.float32 or value.size <= 1:
                continue
            if t not in dequantized:
                half = model.constant(model.tensors[t].name + "_fp16", value.astype(np.float16))
                out = model.tensor(model.tensors[t].name + "_dequantized", value.shape, "float32")
                head.append(Operator("DEQUANTIZE", [half], [out]))
                dequantized[t] = out
            op.inputs[k] = dequantized[t]
    model.operators[:0] = head
    return len(dequantized)


#: op -> (weights input, axis of the output channels) for int8 dynamic-range (hybrid) weights
HYBRID = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "FULLY_CONNECTED": (1, 0)}
#: weights smaller than this stay float32, as the TFLite converter leaves them
HYBRID_MIN_ELEMENTS = 1024


def int8_weights(model: LiteModel) -> int:
    """The weights of convolutions and fully connected ops as int8, symmetric per output channel
    (scale = max|w| / 127, zero point 0): TFLite's hybrid kernels quantize the float activations on
    the fly (`--quantize dynamic`, what the converter's dynamic-range quantization writes). Returns
    how many weights were quantized."""
    from modeltool.exporters.litert.flatbuffer import schema

    s = schema()
    done: dict[int, int] = {}
    for op in model.operators:
        if op.op not in HYBRID:
            continue
        k, axis = HYBRID[op.op]
        t = op.inputs[k]
        value = model.value(t)
        if value is None or value.dtype != np.float32 or value.size < HYBRID_MIN_ELEMENTS:
            continue
        if t not in done:
            moved = np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1)
            scale = np.maximum(np.abs(moved).max(axis=1), np.float32(1e-12)) / np.float32(127.0)
            shape = [1] * value.ndim
            shape[axis] = -1
            q = np.clip(np.round(value / scale.reshape(shape)), -127, 127).astype(np.int8)
            index = model.constant(model.tensors[t].name + "_int8", q)
            params = s.QuantizationParametersT()
            params.scale = scale.astype(np.float32).tolist()
            params.zeroPoint = [0] * scale.size
            params.quantizedDimension = axis
            model.tensors[index].quantization = params
            done[t] = index
        op.inputs[k] = done[t]
        if op.op == "FULLY_CONNECTED":
            op.options.asymmetricQuantizeInputs = True
    return len(done)
