"""Keras to ONNX without TensorFlow: the ONNX graph written straight from modeltool's IR.

Every Keras file modeltool reads (Keras 1, 2 or 3; `.h5`, `.keras`, JSON/YAML + weights) is already a
graph of layers with their configs and lazily read weights (`modeltool.ir`). This package writes that
graph as ONNX, one converter per layer class (declared with the class in `modeltool.keras.layers`, read by `registry`),
with `onnx.helper`/`onnx.numpy_helper` only: no TensorFlow, no tf2onnx, no Keras. What a layer
computes is what Keras defines (TF's asymmetric 'same' padding, pooling rounding, gate orders of the
recurrent layers), and what Keras 1/2 meant where Keras 3 changed a name's meaning (the legacy hard
sigmoid is `HardSigmoid(0.2, 0.5)`).

- `export.build(ir, ...)`: the ONNX ModelProto and what was written (nodes, ops, layout);
- `registry.coverage(ir)`: the layers the direct route has no converter for, with the reason;
- `onnx_route` (one level up) chooses this route or the TensorFlow one and says why.
"""

from __future__ import annotations
