"""The IR's layer graph walked call by call: each layer call converted, nested models inlined.

The IR (`modeltool.keras.graph`) names every tensor by its producer: `layer` for the first call's
first output, `layer@1` for a shared layer's second call, `layer:1` for a second output. A nested
model is written in place, its layers named under it (`outer/inner/dense`); called twice, its second
copy is `outer/inner@1/dense` (same weights). Calls are converted once everything they read exists,
so a shared layer called late in the config is converted in the right order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeltool.exporters.direct.builder import Value
from modeltool.exporters.direct.context import TENSOR, Layer, NotCovered
from modeltool.exporters.direct.registry import MASK_PROPAGATING, converter, raw_layers, raw_name
from modeltool.ir import Graph, Node, Weight
from modeltool.keras import layers as keras_layers
from modeltool.keras.graph import call_keys, skip_first_nodes, tensor_keys
from modeltool.keras.legacy import normalize_layer

#: finds the function writing a layer class: (class, module, custom objects) -> function or None
Lookup = Callable[[str, "str | None", "dict[str, Any]"], Any]


def tensor_name(layer: str, call: int, index: int) -> str:
    """The IR's name of output `index` of call `call` of `layer` (as `Node.inbound` spells it)."""
    text = layer if call == 0 else f"{layer}@{call}"
    return text if index == 0 else f"{text}:{index}"


class Walker:
    """Converts graphs of layer nodes into the context's graph: ONNX by default, or whatever the
    functions `lookup` finds write (the direct TFLite route's lowerings walk the same way)."""

    def __init__(self, ctx: Any, weights: list[Weight], custom: dict[str, Any] | None = None,
                 lookup: Lookup = converter) -> None:  # fmt: skip
        self.ctx = ctx
        self.lookup = lookup
        self.custom = custom or {}
        self.weights: dict[str, list[Weight]] = {}
        for w in weights:
            self.weights.setdefault(w.layer or "", []).append(w)
        ctx.dispatch = self.dispatch

    def dispatch(self, layer: Layer, inputs: list[Value]) -> list[Value]:
        """Convert one layer call with its converter, named under its path."""
        fn = self.lookup(layer.cls, layer.module, self.custom)
        if fn is None:
            reason = "a Lambda layer: its Python code is what it computes" if layer.cls == "Lambda" else (
                "no direct converter for this class")  # fmt: skip
            raise layer.refuse(reason)
        saved, self.ctx.scope = self.ctx.scope, layer.path
        try:
            return list(fn(self.ctx, layer, inputs))
        finally:
            self.ctx.scope = saved

    def graph(self, graph: Graph, model_cfg: dict[str, Any], inputs: list[Value], scope: str = "",
              weights_prefix: str = "") -> list[Value]:  # fmt: skip
        """The outputs of `graph` (the layers of `model_cfg`) given values for its inputs."""
        if len(inputs) != len(graph.inputs):
            raise NotCovered(scope or "model", "model", f"{len(inputs)} inputs given, the model takes "
                                                        f"{len(graph.inputs)}")  # fmt: skip
        values: dict[str, Value] = {spec.name: v for spec, v in zip(graph.inputs, inputs)}
        entries = {raw_name(e): e for e in raw_layers(model_cfg)}
        pending = [(node, call) for node in graph.nodes for call in range(len(node.inbound))]
        while pending:  # one sweep when the config lists layers in order (it nearly always does)
            left = []
            for node, call in pending:
                if not all(t in values for t in node.inbound[call]):
                    left.append((node, call))
                    continue
                ins = [values[t] for t in node.inbound[call]]
                outs = self._call(node, call, ins, entries.get(node.name, {}), scope, weights_prefix)
                for k, value in enumerate(outs):
                    values[tensor_name(node.name, call, k)] = value
            if len(left) == len(pending):
                missing = sorted({t for n, c in left for t in n.inbound[c] if t not in values})
                raise NotCovered(scope or "model", "model", f"tensors never produced: {', '.join(missing[:5])}")
            pending = left
        return [values[name] for name in self._output_names(graph, model_cfg, values)]

    def _call(self, node: Node, call: int, inputs: list[Value], entry: dict[str, Any], scope: str,
              weights_prefix: str) -> list[Value]:  # fmt: skip
        path = scope + (node.name if call == 0 else f"{node.name}@{call}")
        if node.subgraph is not None:
            return self.graph(node.subgraph, entry if entry else {"config": node.config}, inputs, path + "/",
                              f"{weights_prefix}{node.name}/")  # fmt: skip
        args, kwargs = call_arguments(entry, call)
        probe = Layer(path, "", node.op, node.config, self.ctx.generation, args=args, kwargs=kwargs)
        if self.ctx.generation >= 3 and entry.get("inbound_nodes"):
            # a Keras 3 functional model passes masks only as the call's recorded `mask=` (it records
            # none for an RNN called with `initial_state`, and runs that RNN unmasked)
            inputs = [v.but(mask=None) if v.mask is not None else v for v in inputs]
        inputs = self._masks_attached(probe.slots(), inputs)
        info = keras_layers.infer(node.op, node.config, [v.shape for v in inputs], entry.get("module"))
        shapes = info.output_shapes if info is not None and info.output_shapes != [None] else (
            node.call_shapes[call] if call < len(node.call_shapes) else [])  # fmt: skip
        weights_path = weights_prefix + node.name
        layer = Layer(path, weights_path, node.op, node.config, self.ctx.generation,
                      self.weights.get(weights_path, []), shapes, args, kwargs, entry.get("module"))  # fmt: skip
        outs = self.dispatch(layer, inputs)
        mask = inputs[0].mask if inputs else None
        if mask is not None and node.op in MASK_PROPAGATING:
            outs = [o if o.mask is not None else o.but(mask=mask) for o in outs]
        return outs

    def _masks_attached(self, slots: list[str], inputs: list[Value]) -> list[Value]:
        """Keras 3 configs pass masks as tensors (`mask=` of the call, one per input for a list):
        they travel with the input they mask instead, as Keras 1/2's implicit masks do."""
        if len(slots) != len(inputs) or not any(s == "mask" or s.startswith("mask.") for s in slots):
            return inputs
        data = [(s, v) for s, v in zip(slots, inputs) if not (s == "mask" or s.startswith("mask."))]
        masks = {s: v for s, v in zip(slots, inputs) if s == "mask" or s.startswith("mask.")}
        out = []
        for k, (_, value) in enumerate(data):
            mask = masks.get("mask" if "mask" in masks else f"mask.{k}")
            out.append(value.but(mask=mask.name) if mask is not None and k < (1 if "mask" in masks else len(data))
                       else value)  # fmt: skip
        return out

    def _output_names(self, graph: Graph, model_cfg: dict[str, Any], values: dict[str, Value]) -> list[str]:
        """The IR names of the model's output tensors, in order."""
        cfg = model_cfg.get("config")
        if isinstance(cfg, dict) and cfg.get("output_layers") is not None and not _sequential(model_cfg):
            keys = tensor_keys(cfg["output_layers"])
            by_name = {raw_name(e): normalize_layer(dict(e, config=dict(e.get("config") or {})))
                       for e in raw_layers(model_cfg)}  # fmt: skip
            calls = {n: call_keys(e) for n, e in by_name.items()}
            _, keys = skip_first_nodes(by_name, calls, keys)
            return [tensor_name(*k) for k in keys]
        last = graph.nodes[-1] if graph.nodes else None
        if last is None:
            return [s.name for s in graph.inputs]
        return [last.name]


def _sequential(model_cfg: dict[str, Any]) -> bool:
    return model_cfg.get("class_name") == "Sequential" or isinstance(model_cfg.get("config"), list)


def call_arguments(entry: dict[str, Any], call: int) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of one call as the config records them, tensors replaced
    by `TENSOR` (Keras 3 `{"args", "kwargs"}` nodes and Keras 1/2 `[[layer, node, index, kwargs]]` lists)."""
    nodes = entry.get("inbound_nodes") or []
    if call >= len(nodes):
        return [], {}
    node = nodes[call]
    if isinstance(node, dict):
        kwargs = {k: _marked(v) for k, v in (node.get("kwargs") or {}).items()}
        return [_marked(a) for a in node.get("args", [])], kwargs
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for item in node if isinstance(node, list) else []:
        if isinstance(item, (list, tuple)) and len(item) >= 3 and isinstance(item[0], str):
            args.append(TENSOR)
            if len(item) > 3 and isinstance(item[3], dict):
                kwargs.update({k: _legacy_marked(v) for k, v in item[3].items()})
    return args, kwargs


def _marked(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return TENSOR
        return {k: _marked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked(v) for v in value]
    return value


def _legacy_marked(value: Any) -> Any:
    """Keras 2 kwargs name tensors as [layer, node, index] triples."""
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
        return TENSOR
    if isinstance(value, list):
        return [_legacy_marked(v) for v in value]
    return value
