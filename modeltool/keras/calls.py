"""How a Keras model is called and what it returns, whatever structure its inputs and outputs
have: KerasHub backbones take a dict of named inputs and return a dict of named outputs, where
Sequential and most functional models take a tensor or a list. Shared by the runners, the TF
traces the exporters write from, and `inspect`'s probe."""

from __future__ import annotations

from typing import Any

from modeltool.deps import require


def pack_inputs(native: Any, args: list[Any]) -> Any:
    """The call argument of a Keras model from its inputs in `native.inputs` order: a dict keyed
    by input name for models built on a dict of inputs (KerasHub's `{"token_ids": ...,
    "padding_mask": ...}`), a list for several inputs, the tensor itself for one."""
    struct = getattr(native, "_inputs_struct", None)
    if isinstance(struct, dict):
        keras = require("keras")
        return keras.tree.pack_sequence_as(struct, list(args))
    return list(args) if len(args) > 1 else args[0]


def flat_outputs(out: Any) -> list[Any]:
    """A Keras model's outputs in `native.outputs` order (a dict flattens in sorted-key order, as
    Keras flattens it)."""
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out) if isinstance(out, (list, tuple)) else [out]


def keras_output_names(native: Any) -> list[str] | None:
    """The keys of a model returning a dict of outputs (KerasHub's `sequence_output`,
    `pooled_output`), in `native.outputs` order; None for other models."""
    struct = getattr(native, "_outputs_struct", None)
    if isinstance(struct, dict) and all(isinstance(k, str) for k in struct):
        return sorted(struct)
    return None
