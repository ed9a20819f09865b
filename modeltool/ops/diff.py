"""`diff A B`: what differs between two models, across formats (an `.h5` against its `.keras`
migration, a SavedModel against the H5 it came from).

Both files are read into the IR, so Keras 1/2/3 spellings are already normalized; configs are
compared after dropping what only says who wrote them (module paths, registered names, build
configs, dtype-policy wrappers, `None` defaults). Layers are matched by path (renames declared with
`--map`), weights by layer, role and occurrence; values are compared exactly unless `--atol`.
No TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.formats import Format
from modeltool.ir import Model, Node, Weight
from modeltool.keras.semantics import ACTIVATION_KEYS, activation_meaning, writer_generation
from modeltool.ops.renames import parse_maps, renamed
from modeltool.options import SourceOptions

#: formats that hold weights without an architecture: only their weights can be compared
WEIGHTS_ONLY = {Format.KERAS_H5_WEIGHTS, Format.KERAS3_WEIGHTS}
#: config keys that record the writer, not the architecture
IGNORED_KEYS = {"name", "module", "registered_name", "build_config", "compile_config", "shared_object_id"}


@dataclass
class DiffReport:
    a: str
    b: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, Any]] = field(default_factory=list)
    compared_weights: int = 0
    atol: float = 0.0
    notes: list[str] = field(default_factory=list)
    architecture_compared: bool = True

    @property
    def equal(self) -> bool:
        return not self.layers and not self.weights

    @property
    def passed(self) -> bool:
        return self.equal

    def to_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "a": self.a, "b": self.b, "atol": self.atol, "layers": self.layers,
                "weights": self.weights, "compared_weights": self.compared_weights, "notes": self.notes,
                "architecture_compared": self.architecture_compared}  # fmt: skip

    def render(self) -> str:
        lines = [f"--- {self.a}", f"+++ {self.b}"]
        for item in self.layers:
            change, layer = item["change"], item["layer"]
            if change == "added":
                lines.append(f"+ layer {layer} ({item['class_b']})")
            elif change == "removed":
                lines.append(f"- layer {layer} ({item['class_a']})")
            else:
                head = f"~ layer {layer}" + (f" (renamed from {item['from']})" if item.get("from") else "")
                if item["class_a"] != item["class_b"]:
                    head += f": {item['class_a']} -> {item['class_b']}"
                lines.append(head)
                for key, (va, vb) in item.get("keys", {}).items():
                    lines.append(f"    {key}: {_short(va)} -> {_short(vb)}")
        for item in self.weights:
            change = item["change"]
            if change == "shape":
                lines.append(f"~ weight {item['weight']}: shape {tuple(item['shape_a'])} -> {tuple(item['shape_b'])}")
            elif change == "values":
                lines.append(f"~ weight {item['weight']}: max abs delta {item['max_abs']:.6g}")
            elif change == "no counterpart":
                lines.append(f"? weight {item['weight']} {tuple(item['shape'])}: no weight of the same values")
            else:
                lines.append(f"{'+' if change == 'added' else '-'} weight {item['weight']} {tuple(item['shape'])}")
        lines += [f"note: {n}" for n in self.notes]
        if self.equal:
            what = "same layers and configs, " if self.architecture_compared else ""
            lines.append(f"equal: {what}{self.compared_weights} weights identical"
                         + (f" within {self.atol:g}" if self.atol else ""))  # fmt: skip
        else:
            n_l, n_w = len(self.layers), len(self.weights)
            lines.append(f"different: {n_l} layer change(s), {n_w} weight change(s)")
        return "\n".join(lines)


def _short(value: Any, limit: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical(value: Any) -> Any:
    """A config value with the writer's wrapping removed (Keras 3 object dicts -> class + config).
    Explicit `None`s are kept: a key set to None differs from one set to a value, while a key
    absent from one file is that file's default and is not compared."""
    if isinstance(value, dict):
        if "class_name" in value and "config" in value and value.get("class_name") == "DTypePolicy":
            return canonical(value["config"].get("name"))
        out = {k: canonical(v) for k, v in value.items() if k not in IGNORED_KEYS}
        if set(out) == {"class_name", "config"} and isinstance(out["config"], dict) and not out["config"]:
            return out["class_name"]
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def class_name(op: str) -> str:
    """`package>Class` (a registered custom class) and `Class` name the same layer class."""
    return op.rsplit(">", 1)[-1]


def _axis(value: Any, node: Node) -> Any:
    """Int axes as non-negative indexes when the layer's output rank is known (3 == -1 in 4-D)."""
    shape = node.output_shapes[0] if node.output_shapes else None
    if shape is None or not len(shape):
        return value
    if isinstance(value, int):
        return value % len(shape)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [v % len(shape) for v in value]
    return value


def _camel(name: str) -> str:
    """`glorot_uniform` (Keras 1/2 shorthand) and `GlorotUniform` name the same object (and Keras
    1's `uniform` is `RandomUniform`)."""
    from modeltool.keras.initializers import KERAS1_NAMES

    camel = "".join(p[:1].upper() + p[1:] for p in name.split("_")) if "_" in name or name.islower() else name
    return KERAS1_NAMES.get(camel, camel)


def _differs(x: Any, y: Any, same_schema: bool) -> bool:
    """Config values differ: floats beyond float32 round-off, dicts on shared keys (or all keys
    when both files come from the same Keras major version), lists element by element, a scalar
    and a list of that scalar (`kernel_size=3` is `(3,)`), an object named by its shorthand
    (`'orthogonal'`) and the same class with its default config."""
    if isinstance(x, str) and isinstance(y, dict) and "class_name" in y:
        return _camel(x) != _camel(str(y["class_name"]))
    if isinstance(y, str) and isinstance(x, dict) and "class_name" in x:
        return _camel(y) != _camel(str(x["class_name"]))
    if isinstance(x, str) and isinstance(y, str) and x != y:
        return _camel(x) != _camel(y)
    if isinstance(x, list) and not isinstance(y, (list, dict)) and x:
        return any(_differs(v, y, same_schema) for v in x)
    if isinstance(y, list) and not isinstance(x, (list, dict)) and y:
        return any(_differs(x, v, same_schema) for v in y)
    if isinstance(x, dict) and isinstance(y, dict):
        return any(_differs(x[k], y[k], same_schema) for k in set(x) & set(y))
    if isinstance(x, list) and isinstance(y, list):
        return len(x) != len(y) or any(_differs(a, b, same_schema) for a, b in zip(x, y))
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            return not np.isclose(x, y, rtol=1e-6, atol=0.0)
    return x != y


def _config_changes(a: Node, b: Node, same_schema: bool, generations: tuple[int, int]) -> dict[str, list[Any]]:
    ca = _meanings(a.config, generations[0])
    cb = _meanings(b.config, generations[1])
    if "axis" in ca and "axis" in cb:
        ca["axis"], cb["axis"] = _axis(ca["axis"], a), _axis(cb["axis"], b)
    keys = set(ca) & set(cb)  # a key one file leaves out holds that writer's default: not comparable
    changes = {k: [ca[k], cb[k]] for k in sorted(keys) if _differs(ca[k], cb[k], same_schema)}
    if a.subgraph is None and b.subgraph is None and [len(c) for c in a.inbound] != [len(c) for c in b.inbound]:
        changes["inbound"] = [a.inbound, b.inbound]
    return changes


def _meanings(config: Any, generation: int) -> dict[str, Any]:
    """The canonical config with activations named by what they compute in the file's Keras
    generation (a Keras 2 `hard_sigmoid` is not Keras 3's)."""
    out = canonical(config) if isinstance(config, dict) else {}
    for key in ACTIVATION_KEYS:
        if key in out:
            out[key] = activation_meaning(config.get(key), generation)
    return out


def diff_models(a: Model, b: Model, *, maps: list[str] | tuple[str, ...] = (), atol: float = 0.0) -> DiffReport:
    """Architecture and weight differences between two loaded models."""
    report = DiffReport(a.path, b.path, atol=atol)
    rules = parse_maps(maps)
    weights_only = [m.path for m in (a, b) if m.format in WEIGHTS_ONLY]
    if weights_only:
        report.notes.append(f"architecture not compared: {', '.join(weights_only)} holds weights only")
        report.architecture_compared = False
        _weights(a, b, rules, report)
        return report
    levels = [m.graph.level if m.graph is not None else "layer" for m in (a, b)]
    if levels[0] != levels[1]:
        op_file = a.path if levels[0] == "op" else b.path
        report.notes.append(
            f"architecture not compared: {op_file} is an op-level graph ({_level_format(a, b, levels)}), whose ops "
            "do not correspond one to one to Keras layers; weights compared by value (any layout)"
        )
        report.architecture_compared = False
        _weights_by_value(a, b, report)
        return report
    nodes_a = {renamed(p, rules): (p, n) for p, n in (a.graph.walk() if a.graph else [])}
    nodes_b = dict(b.graph.walk()) if b.graph else {}
    same_schema = _major(a) == _major(b)
    generations = (writer_generation(a), writer_generation(b))
    for path, (orig, node) in nodes_a.items():
        if path not in nodes_b:
            report.layers.append({"layer": orig, "change": "removed", "class_a": node.op})
            continue
        other = nodes_b[path]
        changes = {} if node.subgraph is not None else _config_changes(node, other, same_schema, generations)
        same_class = class_name(node.op) == class_name(other.op)
        if not same_class or changes or orig != path:
            if same_class and not changes and orig != path:
                report.layers.append({"layer": path, "change": "renamed", "from": orig, "class_a": node.op,
                                      "class_b": other.op, "keys": {}})  # fmt: skip
            else:
                report.layers.append({"layer": path, "change": "changed", "class_a": node.op, "class_b": other.op,
                                      "keys": changes, **({"from": orig} if orig != path else {})})  # fmt: skip
    for path, node in nodes_b.items():
        if path not in nodes_a:
            report.layers.append({"layer": path, "change": "added", "class_b": node.op})
    _weights(a, b, rules, report)
    return report


def _major(model: Model) -> str | None:
    """The Keras major version that wrote the file ("2", "3"), when it says."""
    version = model.metadata.writer.get("keras_version")
    if not version and model.config:
        version = str(model.config.get("keras_version") or "")
    return version.split(".")[0] if version else None


def _keyed(weights: list[Weight], rules: list) -> dict[tuple[str, str, int], Weight]:
    out: dict[tuple[str, str, int], Weight] = {}
    seen: dict[tuple[str, str], int] = {}
    for w in weights:
        layer = renamed(w.layer or "", rules) if rules else (w.layer or "")
        k = (layer, w.role)
        out[(layer, w.role, seen.get(k, 0))] = w
        seen[k] = seen.get(k, 0) + 1
    return out


def _label(key: tuple[str, str, int]) -> str:
    layer, role, i = key
    return "/".join(p for p in (layer, role) if p) + (f"#{i}" if i else "")


def _positional(wa: dict, wb: dict) -> None:
    """A layer whose weights one file names by role (`w`, `b`) and the other only by index
    (`var0`, `var1`: a custom layer in a Keras 3 weights file), or by a role guessed without an
    architecture (Keras 1 `embedding_1_W` read as `kernel`), is paired by position when the
    shapes agree."""
    layers = {k[0] for k in wa} & {k[0] for k in wb}
    for layer in layers:
        ka = [k for k in wa if k[0] == layer]
        kb = [k for k in wb if k[0] == layer]
        if len(ka) != len(kb) or set(ka) == set(kb):
            continue
        generic = all(k[1].startswith("var") and k[1][3:].isdigit() for k in kb)
        same_shapes = all(tuple(wa[x].shape) == tuple(wb[y].shape) for x, y in zip(ka, kb))
        if generic or all(k[1].startswith("var") and k[1][3:].isdigit() for k in ka) or same_shapes:
            for x, y in zip(ka, kb):
                wb[x] = wb.pop(y) if x != y else wb[y]


def _legacy_layouts(a: Model, b: Model, wa: dict, wb: dict, report: DiffReport) -> None:
    """A weights-only file (whose loader had no architecture to convert its layout with) in a Keras 1
    or CuDNN layout (12 per-gate LSTM arrays, 4-D Conv1D kernels, Theano kernels) is compared after
    converting it to the other file's Keras 3 layout."""
    from modeltool.errors import LoadError
    from modeltool.ir import Weight
    from modeltool.keras.legacy_arrays import convert_layer_arrays, wrapped_class

    nodes = dict(b.graph.walk()) if b.graph else {}
    for layer in sorted({k[0] for k in wa} & {k[0] for k in wb}):
        ka, kb = [k for k in wa if k[0] == layer], [k for k in wb if k[0] == layer]
        if len(ka) == len(kb) and all(tuple(wa[x].shape) == tuple(wb[y].shape) for x, y in zip(ka, kb)):
            continue
        node = nodes.get(layer)
        cls, cell = (class_name(node.op), wrapped_class(node.config)) if node is not None else ("", None)
        try:
            arrays = convert_layer_arrays(cls, [wa[k].value() for k in ka], [tuple(wb[k].shape) for k in kb],
                                          layer, a.path, cell=cell)  # fmt: skip
        except LoadError:
            continue
        for k in ka:
            del wa[k]
        for k, arr in zip(kb, arrays):
            wa[k] = Weight(k[1], layer, k[1], tuple(arr.shape), str(arr.dtype), True, lambda arr=arr: iter([arr]))
        report.notes.append(f"{layer}: {len(ka)} legacy arrays compared in the {len(kb)}-array Keras 3 layout")


def _level_format(a: Model, b: Model, levels: list[str]) -> str:
    return (a if levels[0] == "op" else b).metadata.format_description


def _fingerprint(w: Weight) -> tuple[int, bytes]:
    """A layout-free identity of a weight's values: its size and its sorted values (a transposed or
    reshaped kernel has the same), rounded to float32."""
    values = np.sort(np.asarray(w.value(), dtype=np.float32).reshape(-1))
    return values.size, values.tobytes()


def _weights_by_value(a: Model, b: Model, report: DiffReport) -> None:
    """A's weights looked up in B by value, whatever their names and layouts (an ONNX initializer is
    a Keras kernel transposed, under a converter's name). Weights a converter folds together (a
    BatchNormalization into the convolution before it) have no counterpart and are listed as such."""
    pool: dict[tuple[int, bytes], int] = {}
    for w in b.weights:
        if w.dtype and str(w.dtype).startswith(("float", "int")) and w.size:
            key = _fingerprint(w)
            pool[key] = pool.get(key, 0) + 1
    zeros = []
    for w in a.weights:
        if not w.size:
            continue
        report.compared_weights += 1
        key = _fingerprint(w)
        if pool.get(key):
            pool[key] -= 1
            continue
        label = "/".join(x for x in (w.layer, w.role) if x) or w.name
        if w.role in ("bias", "beta") and not np.any(np.asarray(w.value())):
            zeros.append(label)  # adding zeros: a converter drops the op, nothing is lost
            continue
        report.weights.append({"weight": label, "change": "no counterpart", "shape": list(w.shape)})
    if zeros:
        report.notes.append(f"all-zero biases without a counterpart (an addition of zero the converter dropped): "
                            f"{', '.join(zeros[:6])}{' ...' if len(zeros) > 6 else ''}")  # fmt: skip
    if report.weights:
        report.notes.append(f"{len(report.weights)} weights of {a.path} have no weight of the same values in "
                            f"{b.path}: changed, or folded into others by the converter (e.g. BatchNormalization "
                            "into a convolution)")  # fmt: skip


def _weights(a: Model, b: Model, rules: list, report: DiffReport) -> None:
    wa, wb = _keyed(a.weights, rules), _keyed(b.weights, [])
    _positional(wa, wb)
    _legacy_layouts(a, b, wa, wb, report)
    _legacy_layouts(b, a, wb, wa, report)
    for key, w in wa.items():
        other = wb.get(key)
        if other is None:
            report.weights.append({"weight": _label(key), "change": "removed", "shape": list(w.shape)})
            continue
        if tuple(w.shape) != tuple(other.shape):
            report.weights.append({"weight": _label(key), "change": "shape", "shape_a": list(w.shape),
                                   "shape_b": list(other.shape)})  # fmt: skip
            continue
        report.compared_weights += 1
        x, y = np.asarray(w.value()), np.asarray(other.value())
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            fx, fy = x.astype(np.float64), y.astype(np.float64)
            gap = np.abs(fx - fy)
            delta = float(gap.max()) if x.size else 0.0
            if np.isnan(delta):  # NaN in the same places is equal; elsewhere it is a difference
                if not np.array_equal(np.isnan(fx), np.isnan(fy)):
                    delta = float("inf")
                else:
                    delta = 0.0 if np.all(np.isnan(gap)) else float(np.nanmax(gap))
        else:
            delta = float(np.max(np.abs(x.astype(np.int64) - y.astype(np.int64)))) if x.size else 0.0
        if delta > report.atol:
            report.weights.append({"weight": _label(key), "change": "values", "max_abs": delta})
    for key, w in wb.items():
        if key not in wa:
            report.weights.append({"weight": _label(key), "change": "added", "shape": list(w.shape)})


def diff_files(
    a: str, b: str, *, maps: list[str] | tuple[str, ...] = (), atol: float = 0.0, options: SourceOptions | None = None
) -> DiffReport:
    """`modeltool diff A B`; the model options apply to whichever file they fit (`--weights-from` to
    a JSON/YAML architecture, `--inputs`/`--outputs` to a GraphDef, `--config` to a checkpoint)."""
    options = options or SourceOptions()
    return diff_models(read_side(a, options), read_side(b, options), maps=maps, atol=atol)


def read_side(path: str, options: SourceOptions) -> Model:
    """One file of a diff, read with the model options that fit its format."""
    from modeltool.formats import detect
    from modeltool.loaders import load, source_options

    fmt = detect(path)
    graph = fmt in (Format.GRAPHDEF, Format.CHECKPOINT)
    return load(path, **source_options(
        weights_from=options.weights_from if fmt in (Format.KERAS_JSON, Format.KERAS_YAML) else None,
        config=options.config if fmt == Format.CHECKPOINT else None,
        inputs=options.inputs if graph else None, outputs=options.outputs if graph else None,
    ))  # fmt: skip
