"""Which converter writes which layer: one explicit table, resolved when used, and the coverage check.

`CONVERTERS` maps a Keras class (its Keras 3 name; Keras 1/2 names are normalized by the loader) to
"module:function"; it is read from the layer declarations in `modeltool.keras.layers` (one per
class, in its family module: shapes, weights, converter, mask behaviour). Keras 3 operations
recorded in functional configs (`x + 3.0`) are keyed `ops.<Class>`. A custom class joins through its own
`modeltool_onnx` method (docs/convert.md).
`coverage(ir)` lists, before anything is written, the layers the direct route cannot write and why;
a configuration that turns out unwritable while converting (a mask reaching an LSTM, say) is
reported the same way by the converter itself (`NotCovered`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modeltool.exporters.direct import activations
from modeltool.ir import Model
from modeltool.keras import layers as keras_layers
from modeltool.keras.rebuild import is_subclassed
from modeltool.keras.semantics import writer_generation

#: {class: "module:function"}, read from the layer declarations (`modeltool.keras.layers`)
CONVERTERS: dict[str, str] = keras_layers.converters()
#: layers that pass the mask Keras propagates on to what follows (others drop it, as in Keras)
MASK_PROPAGATING = keras_layers.mask_propagating()

Converter = Callable[..., Any]


def key(cls: str, module: str | None) -> str:
    """The table key of a layer (`modeltool.keras.layers.table_key`): `ops.<Class>` for a keras.ops
    operation recorded as a layer, `keras_hub>Class` for a model library's class."""
    return keras_layers.table_key(cls, module)


def converter(cls: str, module: str | None, custom: dict[str, Any] | None = None) -> Converter | None:
    """The function writing layers of class `cls`, or None."""
    hook = _custom_hook(cls, custom)
    if hook is not None:
        return hook
    target = CONVERTERS.get(key(cls, module))
    if target is None:
        return None
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def _custom_hook(cls: str, custom: dict[str, Any] | None) -> Converter | None:
    """A user's class with a `modeltool_onnx(ctx, layer, inputs)` method converts itself."""
    for name, obj in (custom or {}).items():
        if name.split(">")[-1] == cls.split(">")[-1] and callable(getattr(obj, "modeltool_onnx", None)):
            return obj.modeltool_onnx
    return None


@dataclass(frozen=True)
class Gap:
    """A layer the direct route cannot write, and why."""

    path: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"layer {self.path!r} ({self.op}): {self.reason}"


def coverage(ir: Model, custom: dict[str, Any] | None = None) -> list[Gap]:
    """Every layer of `ir` the direct route has no converter for (or not for its configuration, as
    far as the configuration alone tells), in graph order."""
    if ir.graph is None or ir.config is None:
        return [Gap(ir.path, "?", "no architecture in the file")]
    nodes = ir.graph.nodes
    if is_subclassed(ir):
        return [Gap(nodes[0].name, nodes[0].op, "a subclassed model: its layers and their order are Python code "
                                                "(the TensorFlow route traces it)")]  # fmt: skip
    generation = writer_generation(ir)
    modules = raw_modules(ir.config)
    masked = [p for p, n in ir.graph.walk()
              if n.op == "Masking" or (isinstance(n.config, dict) and n.config.get("mask_zero") is True)]  # fmt: skip
    gaps = []
    for path, node in ir.graph.walk():
        if node.subgraph is not None or node.op == "InputLayer":
            continue
        reason = _gap(node.op, node.config, modules.get(path), custom, generation)
        if not reason and masked and key(node.op, modules.get(path)).startswith("keras_hub>"):
            # Keras 3 hands a tensor's mask to the blocks inside (attention reads query/value masks)
            reason = f"a mask carried by the tensors (from {masked[0]!r}) into a KerasHub block"
        if reason:
            gaps.append(Gap(path, node.op, reason))
    return gaps


def _gap(cls: str, cfg: dict[str, Any], module: str | None, custom: dict[str, Any] | None, generation: int) -> str:
    if cls == "Lambda":
        return "a Lambda layer: its Python code is what it computes (the TensorFlow route runs it)"
    if converter(cls, module, custom) is None:
        if any(n.split(">")[-1] == cls.split(">")[-1] for n in custom or {}):
            return "a custom class without a modeltool_onnx method"
        return "no direct converter for this class"
    if _custom_hook(cls, custom) is not None:
        return ""
    for wrapped_key in ("layer", "backward_layer"):
        inner = cfg.get(wrapped_key)
        if isinstance(inner, dict) and "class_name" in inner:
            reason = _gap(inner["class_name"], inner.get("config") or {}, None, custom, generation)
            if reason:
                return f"wrapped {inner['class_name']}: {reason}"
    for spec_key in ("activation", "recurrent_activation"):
        if spec_key in cfg and not activations.covered(cfg[spec_key], generation):
            return f"{spec_key}={activations.activation_name(cfg[spec_key], generation)!r} has no direct ONNX form"
    if cfg.get("stateful"):
        return "stateful=True: the state would have to persist between calls"
    return ""


def raw_modules(model_cfg: dict[str, Any], prefix: str = "") -> dict[str, str | None]:
    """{layer path: the `module` its config entry names} (Keras 3 configs say where a class lives:
    `keras.layers` for a layer, `keras.src.ops.numpy` for an operation recorded as a layer)."""
    out: dict[str, str | None] = {}
    for entry in raw_layers(model_cfg):
        name = raw_name(entry)
        out[prefix + name] = entry.get("module")
        if isinstance(entry.get("config"), (dict, list)) and raw_layers(entry):
            out.update(raw_modules(entry, f"{prefix}{name}/"))
    return out


def raw_layers(model_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer entries of a Sequential (list or dict) or Functional config."""
    cfg = model_cfg.get("config")
    if isinstance(cfg, list):
        return [e for e in cfg if isinstance(e, dict)]
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return [e for e in cfg["layers"] if isinstance(e, dict)]
    return []


def raw_name(entry: dict[str, Any]) -> str:
    cfg = entry.get("config")
    return str(entry.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None) or entry.get("class_name"))
