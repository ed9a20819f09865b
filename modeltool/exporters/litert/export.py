"""An IR model as a .tflite flatbuffer: boundary, graph walk, folds, SignatureDef, metadata.

The inputs and outputs carry the names the source states (the SignatureDef `serving_default` maps
them to tensors, as TensorFlow's converter does for a Keras model); a dim Keras leaves open is -1 in
the tensor's shape signature (LiteRT resizes it at run time); `--input-shape` fixes dims.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from modeltool.errors import UsageError
from modeltool.exporters.direct.context import NotCovered
from modeltool.exporters.direct.export import input_shape
from modeltool.exporters.direct.walk import Walker
from modeltool.exporters.litert import passes
from modeltool.exporters.litert.context import LiteContext
from modeltool.exporters.litert.flatbuffer import LiteModel
from modeltool.ir import Model
from modeltool.keras import layers as keras_layers
from modeltool.keras.rebuild import is_subclassed
from modeltool.keras.semantics import refuse_lost_semantics, writer_generation
from modeltool.options import Shape

#: --quantize kinds the direct TFLite route writes itself
DIRECT_QUANTIZE = ("float16", "dynamic")


@dataclass
class LiteBuilt:
    """The file's bytes and what the report says about them."""

    data: bytes
    op_counts: dict[str, int]
    folds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)

    @property
    def ops(self) -> int:
        return sum(self.op_counts.values())


def lowering(cls: str, module: str | None, custom: dict[str, Any] | None = None) -> Any:
    """The function writing layers of class `cls` as TFLite ops, or None (a user's custom class has
    none: the TensorFlow route converts it)."""
    if any(n.split(">")[-1] == cls.split(">")[-1] for n in custom or {}):
        return None
    target = keras_layers.lowerings().get(keras_layers.table_key(cls, module))
    if target is None:
        return None
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)


def gaps(ir: Model, custom: dict[str, Any] | None = None) -> list[NotCovered]:
    """Every layer the direct TFLite route has no lowering for, in graph order (its configuration
    may still hold something a lowering refuses, found when it is written)."""
    if ir.graph is None or ir.config is None:
        return [NotCovered(ir.path, "?", "no architecture in the file")]
    if is_subclassed(ir):
        node = ir.graph.nodes[0]
        return [NotCovered(node.name, node.op, "a subclassed model: its layers are Python code")]
    from modeltool.exporters.direct.registry import raw_modules
    from modeltool.exporters.litert.activations import covered

    modules = raw_modules(ir.config)
    generation = writer_generation(ir)
    out = []
    for path, node in ir.graph.walk():
        if node.subgraph is not None or node.op == "InputLayer":
            continue
        if node.op == "Lambda":
            out.append(NotCovered(path, node.op, "a Lambda layer: its Python code is what it computes"))
        elif lowering(node.op, modules.get(path), custom) is None:
            out.append(NotCovered(path, node.op, "no TFLite lowering for this class"))
        elif "activation" in node.config and not covered(node.config["activation"], generation):
            out.append(NotCovered(path, node.op, f"activation {node.config['activation']!r} has no TFLite lowering"))
    return out


def build(ir: Model, names: tuple[list[str], list[str]], *, input_shapes: dict[str, Shape] | None = None,
          custom: dict[str, Any] | None = None, quantize: str | None = None,
          metadata: dict[str, Any] | None = None) -> LiteBuilt:  # fmt: skip
    """`ir` as a .tflite file; raises NotCovered naming the first layer the route cannot write."""
    found = gaps(ir, custom)
    if found:
        raise found[0]
    assert ir.graph is not None and ir.config is not None
    if quantize not in (None, "none", *DIRECT_QUANTIZE):
        raise UsageError(f"--quantize {quantize}: the direct TFLite route writes {', '.join(DIRECT_QUANTIZE)}")
    if writer_generation(ir) < 3:
        refuse_lost_semantics(ir.config)
    in_names, out_names = names
    shapes = input_shapes or {}
    unknown = set(shapes) - set(in_names)
    if unknown:
        raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {', '.join(in_names)}")
    model = LiteModel()
    ctx = LiteContext(model, writer_generation(ir))
    walker = Walker(ctx, ir.weights, custom, lookup=lowering)
    values = []
    for spec, name in zip(ir.graph.inputs, in_names):
        shape = input_shape(spec.shape, shapes.get(name), name)
        dtype = str(spec.dtype or "float32")
        value = ctx.tensor(name, tuple(shape), "int32" if dtype == "int64" else dtype)
        model.inputs.append(ctx.index(value))
        values.append(value)
    outs = walker.graph(ir.graph, ir.config, values)
    for value, name in zip(outs, out_names):
        index = ctx.index(value)
        if index in model.inputs or index in model.outputs:  # an input passed through, a tensor output twice
            ctx.scope = name
            value = ctx.reshape(value, value.shape) if sum(d is None for d in value.shape) <= 1 else value
            index = ctx.index(value)
        model.outputs.append(index)
    folds = passes.run_all(model)
    if quantize == "float16":
        folds.append(f"{passes.float16_weights(model)} weights stored as float16 (DEQUANTIZE at load)")
    elif quantize == "dynamic":
        folds.append(f"{passes.int8_weights(model)} weights stored as int8 per output channel (hybrid kernels)")
    counts: dict[str, int] = {}
    for op in model.operators:
        counts[op.op] = counts.get(op.op, 0) + 1
    data = model.serialize(names, metadata or {}, ir.graph.name or "main")
    return LiteBuilt(data, counts, folds, ctx.notes, ctx.decisions)
