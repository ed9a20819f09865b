"""`extract`: a sub-model cut out of a functional or sequential model, nested models included.

The source is rebuilt as a Keras 3 model (never handed to Keras as a file), then re-traced layer by
layer from the IR graph with the same layer objects (so the weights are shared): nested models are
inlined, `--inputs` layers are replaced by new `Input`s shaped like their outputs, and the layers
named by `--outputs` become the outputs. The result is verified before anything is written: on the
same inputs, its outputs must equal the original model's intermediate activations, which Keras
itself computes (`keras.Model(model.inputs, layer.output)`, one nested level at a time).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.errors import UnsupportedError, UsageError
from modeltool.ir import Graph, Model, Node, TensorSpec
from modeltool.options import ConvertOptions
from modeltool.runners.base import Feed, Runner
from modeltool.verify import VerifyReport


@dataclass
class ExtractReport:
    source: str
    output: str
    inputs: list[str]
    outputs: list[str]
    layers: int = 0
    params: int = 0
    verification: VerifyReport | None = None
    conversion: Any = None
    written: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ok = self.verification is None or self.verification.agrees
        return ok and (self.conversion is None or self.conversion.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "written": self.written, "source": self.source, "output": self.output,
            "inputs": self.inputs, "outputs": self.outputs, "layers": self.layers, "params": self.params,
            "verification": self.verification.to_dict() if self.verification else None,
            "conversion": self.conversion.to_dict() if self.conversion else None, "warnings": self.warnings,
        }  # fmt: skip

    def render(self) -> str:
        ins, outs = ", ".join(self.inputs), ", ".join(self.outputs)
        lines = [f"{self.source} -> {self.output}: sub-model ({ins}) -> ({outs}), {self.layers} layers, "
                 f"{self.params:,} params"]  # fmt: skip
        lines += [f"warning: {w}" for w in self.warnings]
        if self.verification is not None:
            lines.append("activations of the original model vs the extracted model:")
            lines.append(self.verification.render())
        if self.conversion is not None:
            lines.append(self.conversion.render())
        if not self.written:
            lines.append(f"nothing written to {self.output}")
        return "\n".join(lines)


def _split(values: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def _native_layer(native: Any, path: str) -> Any:
    layer = native
    for part in path.split("/"):
        layer = layer.get_layer(part)
    return layer


def _node(ir: Model, path: str) -> Node:
    for p, node in ir.graph.walk() if ir.graph else []:
        if p == path:
            return node
    matches = [(p, n) for p, n in (ir.graph.walk() if ir.graph else []) if p.rsplit("/", 1)[-1] == path]
    if len(matches) == 1:
        return matches[0][1]
    names = ", ".join(p for p, _ in (ir.graph.walk() if ir.graph else []))
    raise UsageError(f"{ir.path}: no layer {path!r}" + (" (ambiguous)" if matches else "") + f"; layers: {names[:400]}")


def _path(ir: Model, name: str) -> str:
    for p, _ in ir.graph.walk() if ir.graph else []:
        if p == name:
            return p
    matches = [p for p, _ in (ir.graph.walk() if ir.graph else []) if p.rsplit("/", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    _node(ir, name)  # raises with the list of layers
    return name


def call_templates(config: dict[str, Any] | None, prefix: str = "") -> dict[str, list[tuple[Any, Any]]]:
    """{layer path: per call, (args, kwargs)} as a Keras 3 config records them, keras tensors left as
    placeholders: `MultiHeadAttention(query, value)` is called with two arguments, `Add` with a list."""
    out: dict[str, list[tuple[Any, Any]]] = {}
    cfg = (config or {}).get("config")
    for entry in cfg.get("layers", []) if isinstance(cfg, dict) else []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        nodes = entry.get("inbound_nodes") or []
        if nodes and all(isinstance(n, dict) for n in nodes):
            out[f"{prefix}{name}"] = [(n.get("args", []), n.get("kwargs", {})) for n in nodes]
        inner = entry.get("config")
        if isinstance(inner, dict) and "layers" in inner:
            out.update(call_templates(entry, f"{prefix}{name}/"))
    return out


def _fill(template: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        if template.get("class_name") == "__keras_tensor__":
            name, call, k = template["config"]["keras_history"]
            base = name if call == 0 else f"{name}@{call}"
            return tensors[base if k == 0 else f"{base}:{k}"]
        return {key: _fill(v, tensors) for key, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, tensors) for v in template]
    return template


class Tracer:
    """Re-runs the IR graph with the native layers, recording every layer call's outputs by path."""

    def __init__(self, native: Any, cuts: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> None:
        self.native = native
        self.cuts = cuts or {}
        self.calls: dict[str, list[list[Any]]] = {}  # layer path -> per call, its output tensors
        self.templates = call_templates(config)

    def run(self, graph: Graph, prefix: str, feeds: dict[str, Any]) -> list[Any]:
        tensors: dict[str, Any] = dict(feeds)
        for node in graph.nodes:
            path = f"{prefix}{node.name}"
            if node.op == "InputLayer":
                tensors.setdefault(node.name, feeds.get(node.name))
                self.calls[path] = [[tensors[node.name]]]
                continue
            for c, call in enumerate(node.inbound):
                if path in self.cuts and c == 0:
                    outs = [self.cuts[path]]
                else:
                    missing = [k for k in call if k not in tensors]
                    if missing:
                        seen = ", ".join(missing)
                        raise UnsupportedError(f"layer {path} consumes {seen}, which the trace has not seen")
                    args = [tensors[k] for k in call]
                    template = self.templates.get(path, [])
                    if node.subgraph is None and c < len(template):
                        outs = self._call_template(path, template[c], tensors)
                    else:
                        outs = self._call(node, path, args)
                self.calls.setdefault(path, []).append(outs)
                for k, t in enumerate(outs):
                    base = node.name if c == 0 else f"{node.name}@{c}"
                    tensors[base if k == 0 else f"{base}:{k}"] = t
        result = []
        for spec in graph.outputs:
            if spec.name not in tensors:
                raise UnsupportedError(f"output {prefix}{spec.name} of a nested model could not be traced")
            result.append(tensors[spec.name])
        return result

    def _call_template(self, path: str, template: tuple[Any, Any], tensors: dict[str, Any]) -> list[Any]:
        try:
            args, kwargs = _fill(template[0], tensors), _fill(template[1], tensors)
        except KeyError as exc:
            raise UnsupportedError(f"layer {path} consumes {exc}, which the trace has not seen") from exc
        out = _native_layer(self.native, path)(*args, **kwargs)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _call(self, node: Node, path: str, args: list[Any]) -> list[Any]:
        if node.subgraph is not None:
            names = [s.name for s in node.subgraph.inputs]
            if len(names) != len(args):
                raise UnsupportedError(f"nested model {path} takes {len(names)} inputs, called with {len(args)}")
            return self.run(node.subgraph, path + "/", dict(zip(names, args)))
        layer = _native_layer(self.native, path)
        out = layer(args[0] if len(args) == 1 else args)
        return list(out) if isinstance(out, (list, tuple)) else [out]


def _output(tracer: Tracer, key: str) -> Any:
    """`layer`, `layer@call` or `layer:k` -> the traced tensor."""
    path, _, k = key.partition(":")
    path, _, call = path.partition("@")
    calls = tracer.calls.get(path)
    if not calls:
        raise UsageError(f"layer {path!r} is not reached from the inputs of the sub-model")
    c, i = int(call or 0), int(k or 0)
    if c >= len(calls) or i >= len(calls[c]):
        raise UsageError(f"layer {path!r} has {len(calls)} call(s) with {len(calls[0])} output(s); {key!r} is none")
    if len(calls) > 1 and not call:
        raise UsageError(f"layer {path!r} is shared ({len(calls)} calls): name the call, e.g. {path}@1")
    return calls[c][i]


def build_submodel(native: Any, ir: Model, outputs: list[str], inputs: list[str]) -> tuple[Any, list[str]]:
    """The extracted Keras model and the layer paths of its new inputs."""
    from modeltool.deps import require

    keras = require("keras", "extracting sub-models")
    graph = ir.graph
    assert graph is not None
    cut_paths = [_path(ir, n) for n in inputs]
    cuts = {}
    for path in cut_paths:
        node = _node(ir, path)
        if len(node.inbound) > 1:
            raise UsageError(f"--inputs {path}: a shared layer ({len(node.inbound)} calls) cannot be a cut point")
        if node.op == "InputLayer":
            continue
        shape = node.output_shapes[0] if node.output_shapes else None
        if shape is None or node.subgraph is not None and len(node.subgraph.outputs) > 1:
            raise UnsupportedError(f"--inputs {path}: its output shape is unknown or it has several outputs")
        dtype = "float32"
        cuts[path] = keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=path.rsplit("/", 1)[-1].replace("/", "_"))
    feeds = {s.name: keras.Input(shape=tuple(s.shape[1:]) if s.shape else (), dtype=s.dtype or "float32", name=s.name)
             for s in graph.inputs}  # fmt: skip
    tracer = Tracer(native, cuts, ir.config)
    tracer.run(graph, "", feeds)
    out_keys = [_resolve_key(ir, k) for k in outputs]
    outs = [_output(tracer, k) for k in out_keys]
    needed = [cuts[p] for p in cut_paths if p in cuts]
    for spec in graph.inputs:  # original inputs the outputs still depend on
        if spec.name in [p.rsplit("/", 1)[-1] for p in cut_paths]:
            needed.append(feeds[spec.name])
        elif _depends(outs, feeds[spec.name], keras):
            needed.append(feeds[spec.name])
    model = keras.Model(needed, outs if len(outs) > 1 else outs[0], name=f"{graph.name or 'model'}_extract")
    return model, cut_paths


def _resolve_key(ir: Model, key: str) -> str:
    name, sep, rest = key.partition("@") if "@" in key else key.partition(":")
    return _path(ir, name) + (sep + rest if sep else "")


def _depends(outs: list[Any], tensor: Any, keras: Any) -> bool:
    """Whether any output is computed from `tensor` (walks Keras's symbolic history)."""
    seen, stack = set(), list(outs)
    while stack:
        t = stack.pop()
        if t is tensor:
            return True
        if id(t) in seen:
            continue
        seen.add(id(t))
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return False


# ---------------------------------------------------------------- verification against Keras itself


class _FnRunner(Runner):
    """A runner over a Python function of the original model's inputs."""

    backend = "keras"

    def __init__(self, label: str, specs: list[TensorSpec], names: list[str], fn: Callable[[Feed], list]) -> None:
        super().__init__(label)
        self.specs, self.names, self.fn = specs, names, fn
        self.provider = "TensorFlow (CPU)"

    def _activate(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:
        return self.specs

    def output_names(self) -> list[str]:
        return self.names

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        return dict(zip(self.names, (np.asarray(v) for v in self.fn(feed))))


def keras_activation(native: Any, ir_graph: Graph, key: str, feed: Feed) -> np.ndarray:
    """The original model's activation at a layer, as Keras computes it: `Model(inputs, layer.output)`
    at each nesting level, fed with the activation that enters the nested model."""
    from modeltool.deps import require

    keras = require("keras")
    path, _, k = key.partition(":")
    path, _, call = path.partition("@")
    parts = path.split("/")
    model, graph, values = native, ir_graph, feed
    for depth, part in enumerate(parts):
        layer = model.get_layer(part)
        if depth == len(parts) - 1:
            node = graph.find(part)
            if node is not None and node.subgraph is not None and not call:
                # a nested model's `.output` belongs to its own graph, not the outer one's: run it on
                # the activations that enter it
                entering = [keras_activation(model, graph, src, values) for src in node.inbound[0]]
                out = layer(entering if len(entering) > 1 else entering[0], training=False)
                outs = list(out) if isinstance(out, (list, tuple)) else [out]
                return np.asarray(outs[int(k or 0)])
            if call:  # a shared layer's later call: Keras keeps one node per call
                outs = list(layer._inbound_nodes[int(call)].output_tensors)
            else:
                outs = list(layer.output) if isinstance(layer.output, (list, tuple)) else [layer.output]
            probe = keras.Model(model.inputs, outs[int(k or 0)])
            return np.asarray(probe(_ordered(model, values)))
        node = graph.find(part)
        entering = [keras_activation(model, graph, src, values) for src in node.inbound[0]]
        values = dict(zip([s.name for s in node.subgraph.inputs], entering))
        model, graph = layer, node.subgraph
    raise AssertionError("unreachable")


def _ordered(model: Any, values: Feed) -> Any:
    """The model's inputs from `values`: by input layer name, else in order (a nested model rebuilt
    by Keras 3 may name its Input differently from the file)."""
    names = [_input_name(t) for t in model.inputs]
    xs = [values[n] for n in names] if all(n in values for n in names) else list(values.values())
    return xs if len(xs) > 1 else xs[0]


def _input_name(t: Any) -> str:
    history = getattr(t, "_keras_history", None)
    return history.operation.name if history is not None else t.name


def extract(
    src: str,
    outputs: str | list[str],
    out: str,
    *,
    inputs: str | list[str] | None = None,
    options: ConvertOptions | None = None,
) -> ExtractReport:
    """Cut the sub-model, verify it against the original's activations, write OUT (any target).
    `options` are convert's: how to read SRC, how to compare, and what the target takes."""
    from dataclasses import replace

    from modeltool.atomic import atomic_path, check_destination
    from modeltool.convert import convert
    from modeltool.keras.rebuild import build, model_objects
    from modeltool.loaders import load, source_options
    from modeltool.targets import Target, check_target_options, target_for
    from modeltool.verify import tolerance_for

    options = options or ConvertOptions()
    out_names, in_names = _split(outputs), _split(inputs)
    if not out_names:
        raise UsageError("--outputs: name at least one layer")
    target = target_for(out, options.to)
    check_destination(out, options.force)
    check_target_options(target, options)
    ir = load(src, **source_options(config=options.config, weights_from=options.weights_from))
    if ir.config is None or ir.graph is None or ir.graph.level != "layer":
        raise UnsupportedError(f"{src}: extraction needs a Keras model ({ir.metadata.format_description} given)")
    custom = model_objects(ir, options.custom_objects, options.trust)
    native = build(ir, custom_objects=custom, unsafe=options.unsafe)
    sub, cut_paths = build_submodel(native, ir, out_names, in_names)
    report = ExtractReport(src, out.rstrip("/"), [t.name.split(":")[0] for t in sub.inputs],
                           [_path(ir, k.split("@")[0].split(":")[0]) for k in out_names], len(sub.layers),
                           int(sub.count_params()))  # fmt: skip
    if options.verify:
        report.verification = _verify(native, ir, sub, cut_paths, out_names, options,
                                      tolerance_for(None, options.atol, options.rtol))  # fmt: skip
        if not report.verification.agrees:
            return report
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "extracted.keras")
        sub.save(staged)
        if target == Target.KERAS:
            with atomic_path(out, force=options.force) as dst:
                os.replace(staged, dst)
            report.written = True
        else:
            # the sub-model is a Keras 3 file of modeltool's own: none of SRC's reading options apply
            staged_options = replace(options, weights_from=None, config=None, reference_mode=None, to=target.value)
            report.conversion = convert(staged, out, staged_options)
            report.conversion.source = src + " (extracted)"
            report.written = report.conversion.written
    return report


def _verify(native: Any, ir: Model, sub: Any, cut_paths: list[str], out_keys: list[str], options: ConvertOptions,
            tol: Any) -> VerifyReport:  # fmt: skip
    from modeltool.feeds import npz_feed, random_feed
    from modeltool.verify import compare

    specs = [TensorSpec(s.name, s.shape, s.dtype) for s in ir.graph.inputs]
    keys = [_resolve_key(ir, k) for k in out_keys]
    names = [k.replace("/", "_") for k in keys]

    def reference(feed: Feed) -> list:
        return [keras_activation(native, ir.graph, k, feed) for k in keys]

    cut_by_name = {p.rsplit("/", 1)[-1]: p for p in cut_paths}

    def extracted(feed: Feed) -> list:
        xs = []
        for t in sub.inputs:
            key = _input_name(t)
            if key in cut_by_name and cut_by_name[key] not in [s.name for s in specs]:
                xs.append(keras_activation(native, ir.graph, cut_by_name[key], feed))
            else:
                xs.append(feed[key])
        out = sub(xs if len(xs) > 1 else xs[0])
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    ref = _FnRunner(f"{ir.path} (Keras's own intermediate activations)", specs, names, reference)
    tgt = _FnRunner("extracted sub-model", specs, names, extracted)
    with ref, tgt:
        if options.input_data:
            feed, source = npz_feed(options.input_data, specs), os.path.basename(options.input_data)
        else:
            feed = random_feed(specs, ir=ir, seed=options.seed, batch=options.batch)
            source = f"random, seed {options.seed}"
        return compare(ref, tgt, feed, tol, input_source=source)
