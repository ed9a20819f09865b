"""Activation layers: element-wise, shape-preserving."""

from __future__ import annotations

from modeltool.keras.layers.spec import Family, LayerInfo, WeightSpec, first

family = Family("activations")


@family.declare("Activation", onnx="activations:activation_layer", mask=True, tflite="activations:activation_layer")
@family.declare("ReLU", onnx="activations:relu_layer", mask=True, tflite="activations:relu_layer")
@family.declare("LeakyReLU", onnx="activations:leaky_relu_layer", mask=True, tflite="activations:leaky_relu_layer")
@family.declare("ELU", onnx="activations:elu_layer", mask=True, tflite="activations:elu_layer")
@family.declare("ThresholdedReLU", onnx="activations:thresholded_relu_layer", mask=True,
                tflite="activations:thresholded_relu_layer")
@family.declare("Softmax", onnx="activations:softmax_layer", mask=True, tflite="activations:softmax_layer")
def _elementwise(cfg, shapes):
    return LayerInfo([first(shapes)])


@family.declare("PReLU", onnx="activations:prelu_layer", mask=True, tflite="activations:prelu_layer")
def _prelu(cfg, shapes):
    s = first(shapes)
    alpha = list(s[1:])
    for ax in cfg.get("shared_axes") or []:
        alpha[ax - 1] = 1
    return LayerInfo([s], [WeightSpec("alpha", tuple(alpha))])
