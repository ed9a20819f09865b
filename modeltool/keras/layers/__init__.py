"""Output shapes and weights of Keras layers, computed from their (normalized) configs, and what
else modeltool knows about each layer class: one declaration per class (`spec.Declaration`) in the
module of its family, collected in `table.LAYERS`.

A config file carries no weights and often no shapes, yet users want `model.summary()`'s figures
without building the model in TensorFlow. Each declared function mirrors one Keras layer's
`compute_output_shape` and `build`: given the config and the input shapes it returns the output
shapes and the weights the layer creates (role, shape, trainable). An unknown class returns None
and shows as unknown: never a guess. Figures are checked against Keras's own `count_params()` and
output shapes by the fixture tests.
"""

from __future__ import annotations

from modeltool.keras.layers.recurrent import RNN_GATES, rnn_weights
from modeltool.keras.layers.spec import Declaration, LayerInfo, Shape, WeightSpec, infer, table_key
from modeltool.keras.layers.table import LAYERS, converters, lowered, lowerings, mask_propagating, sized

__all__ = [
    "LAYERS", "RNN_GATES", "Declaration", "LayerInfo", "Shape", "WeightSpec", "converters", "infer",
    "lowered", "lowerings", "mask_propagating", "rnn_weights", "sized", "table_key",
]  # fmt: skip
