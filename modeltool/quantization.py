"""What kind of quantization a TFLite or ONNX file holds, read from the IR (no runtime needed).

`verify` picks the documented tolerance of that kind when it compares a quantized file with its
float source (a user should not have to say what the file says itself), and `check` reports it.
"""

from __future__ import annotations

from modeltool.formats import Format
from modeltool.ir import Model

KINDS = ("none", "float16", "dynamic", "int8")
#: ONNX ops that only quantized models hold
ONNX_STATIC = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearConcat",
               "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearLeakyRelu"}  # fmt: skip
ONNX_DYNAMIC = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                "DynamicQuantizeLSTM"}  # fmt: skip
INT_DTYPES = ("int8", "uint8", "int16")


def quantization_kind(model: Model) -> str:
    """none, float16, dynamic (integer weights, float activations) or int8 (integer activations)."""
    if model.metadata.format == Format.ONNX:
        return _onnx_kind(model)
    int_weights = any(w.dtype in INT_DTYPES for w in model.weights)
    quant_acts = any(n.attrs.get("quantization") for n in model.layers)
    if int_weights and quant_acts:
        return "int8"
    if int_weights:
        return "dynamic"
    if any(w.dtype == "float16" for w in model.weights):
        return "float16"
    return "none"


def _onnx_kind(model: Model) -> str:
    ops = {n.op for n in model.layers}
    if ops & ONNX_DYNAMIC:
        return "dynamic"
    if ops & ONNX_STATIC or ("DequantizeLinear" in ops and any(w.dtype in INT_DTYPES for w in model.weights)):
        return "int8"
    floats = [w.dtype for w in model.weights if w.dtype and w.dtype.startswith("float")]
    if floats and floats.count("float16") * 2 > len(floats):
        return "float16"
    return "none"
