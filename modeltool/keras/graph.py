"""A Keras model config (any Keras version) becomes a layer-level `Graph` with shapes and params.

Sequential and Functional configs of Keras 1, 2 and 3 differ in shape (list vs dict Sequential
configs, list-style vs dict-style `inbound_nodes`, `input_layers` as one triple or a list); this
module reads them all after `legacy.normalize_layer` has unified the layer configs. Shapes are
propagated call by call, so shared layers and nested models (run as sub-graphs) get theirs too.
Nothing here imports TensorFlow or runs code from the config.
"""

from __future__ import annotations

import math
import re
from typing import Any

from modeltool.errors import LoadError
from modeltool.ir import Graph, Node, TensorSpec
from modeltool.keras import layers as L
from modeltool.keras.legacy import CLASS_RENAMES, normalize_layer
from modeltool.limits import MAX_MODEL_NESTING

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
MAX_DEPTH = MAX_MODEL_NESTING  # models inside models (bounded resources)

#: Keras built-ins whose shapes modeltool does not compute (shown as unknown, not as custom)
KNOWN_WITHOUT_SHAPES = {
    "MultiHeadAttention", "Attention", "AdditiveAttention", "EinsumDense", "ConvLSTM1D", "ConvLSTM2D",
    "ConvLSTM3D", "RNN", "StackedRNNCells", "Wrapper", "TextVectorization", "StringLookup",
    "IntegerLookup", "CategoryEncoding", "Hashing", "Discretization", "TFSMLayer", "TorchModuleWrapper",
    "Lambda",
}  # fmt: skip

#: modules of Keras itself, whichever Keras wrote the file (not user code)
KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")

TensorKey = tuple[str, int, int]  # (layer name, call index, output index)


def is_model_class(class_name: str) -> bool:
    return CLASS_RENAMES.get(class_name, class_name) in MODEL_CLASSES


def build_graph(model_cfg: dict[str, Any], input_shapes: list | None = None, depth: int = 0) -> Graph:
    """Graph of a `{"class_name": "Sequential"|"Functional"|"Model", "config": ...}` dict."""
    if depth > MAX_DEPTH:
        raise LoadError(f"model config nests deeper than {MAX_DEPTH} levels")
    cls = CLASS_RENAMES.get(model_cfg.get("class_name", ""), model_cfg.get("class_name", ""))
    cfg = model_cfg.get("config")
    if cls == "Sequential" or isinstance(cfg, list):
        return _sequential(model_cfg, input_shapes, depth)
    if isinstance(cfg, dict) and "layers" in cfg:
        return _functional(cfg, input_shapes, depth)
    raise LoadError(f"unsupported model class {model_cfg.get('class_name')!r} (no layer list in its config)")


# ---------------------------------------------------------------- Sequential


def _sequential(model_cfg: dict, input_shapes: list | None, depth: int) -> Graph:
    cfg = model_cfg.get("config")
    layer_cfgs = cfg if isinstance(cfg, list) else (cfg or {}).get("layers", [])
    name = None if isinstance(cfg, list) else (cfg or {}).get("name")
    layers = [normalize_layer(_layer_entry(lc)) for lc in layer_cfgs]
    input_layer = next((lc for lc in layers if lc["class_name"] == "InputLayer"), None)
    body = [lc for lc in layers if lc["class_name"] != "InputLayer"]

    shape, dtype, in_name = None, None, None
    if input_shapes:
        shape = input_shapes[0]
    if input_layer is not None:
        icfg = input_layer["config"]
        shape = shape or _shape(icfg.get("batch_shape"))
        dtype, in_name = icfg.get("dtype"), icfg.get("name") or input_layer.get("name")
    if shape is None and body and body[0]["config"].get("batch_shape") is not None:
        shape = _shape(body[0]["config"]["batch_shape"])
    if shape is None and isinstance(cfg, dict):
        build = cfg.get("build_input_shape") or (model_cfg.get("build_config") or {}).get("input_shape")
        shape = _shape(build) if build is not None and not isinstance(build, dict) else None
    if shape is None and body and body[0].get("build_config"):
        shape = _shape(body[0]["build_config"].get("input_shape"))
    if dtype is None and body:  # Keras 1 `input_dtype` is the input's dtype, not the layer's
        first = body[0]["config"]
        dtype = first.get("input_dtype") or (first.get("dtype") if isinstance(first.get("dtype"), str) else None)
    if in_name is None:
        in_name = f"{_layer_name(body[0])}_input" if body else "input"
    inputs = [TensorSpec(in_name, shape, dtype or "float32")]

    nodes: list[Node] = []
    prev, prev_shape = in_name, shape
    for lc in body:
        node = _make_node(lc, [[prev]], [prev_shape], depth)
        nodes.append(node)
        prev = node.name
        prev_shape = node.output_shapes[0] if node.output_shapes else None
    outputs = []
    if nodes:
        last = nodes[-1]
        outputs = [TensorSpec(last.name, prev_shape, _out_dtype(last))]
    return Graph(nodes, inputs, outputs, "layer", name)


# ---------------------------------------------------------------- Functional


def _functional(cfg: dict, input_shapes: list | None, depth: int) -> Graph:
    entries = [normalize_layer(_layer_entry(lc)) for lc in cfg.get("layers", [])]
    by_name = {_layer_name(e): e for e in entries}
    input_keys = tensor_keys(cfg.get("input_layers"))
    output_keys = tensor_keys(cfg.get("output_layers"))
    if entries and (not input_keys or not output_keys):
        missing = "input_layers" if not input_keys else "output_layers"
        raise LoadError(f"functional model config has no {missing} (truncated or edited config)")
    tensors: dict[TensorKey, Any] = {}
    for i, key in enumerate(input_keys):
        entry = by_name.get(key[0])
        if entry is None:
            raise LoadError(f"model input refers to unknown layer {key[0]!r}")
        given = input_shapes[i] if input_shapes and i < len(input_shapes) else None
        tensors[key] = given or _shape(entry["config"].get("batch_shape"))

    calls = {name: call_keys(e) for name, e in by_name.items()}
    calls, output_keys = skip_first_nodes(by_name, calls, output_keys)
    done: dict[str, list] = {name: [] for name in by_name}
    nodes: dict[str, Node] = {}
    pending = True
    while pending:
        pending, progressed = False, False
        for entry in entries:
            name = _layer_name(entry)
            if entry["class_name"] == "InputLayer":
                if name not in nodes:
                    key = (name, 0, 0)
                    shape = tensors.get(key, _shape(entry["config"].get("batch_shape")))
                    tensors[key] = shape
                    nodes[name] = Node(name, "InputLayer", entry["config"], [], [shape], [[shape]], 0, 0)
                    progressed = True
                continue
            layer_calls = calls[name]
            while len(done[name]) < len(layer_calls):
                idx = len(done[name])
                call = layer_calls[idx]
                if not all(k in tensors for k in call):
                    pending = True
                    break
                in_shapes = [tensors[k] for k in call]
                inbound = [_tensor_name(k) for k in call]
                if name not in nodes:
                    nodes[name] = _make_node(entry, [inbound], in_shapes, depth)
                    outs = nodes[name].output_shapes
                else:
                    outs = _call_again(nodes[name], entry, inbound, in_shapes, depth)
                for k, shape in enumerate(outs):
                    tensors[(name, idx, k)] = shape
                done[name].append(outs)
                progressed = True
            if not layer_calls and name not in nodes:
                nodes[name] = _make_node(entry, [], [], depth)
        if pending and not progressed:
            missing = [n for n in by_name if len(done[n]) < len(calls[n]) and by_name[n]["class_name"] != "InputLayer"]
            raise LoadError(f"model config has layers whose inputs never appear: {', '.join(missing[:5])}")

    ordered = [nodes[_layer_name(e)] for e in entries if _layer_name(e) in nodes]
    inputs = [TensorSpec(k[0], tensors.get(k), by_name[k[0]]["config"].get("dtype") or "float32") for k in input_keys]
    seen: dict[str, int] = {}
    outputs = []
    for k in output_keys:
        base = k[0]
        seen[base] = seen.get(base, 0) + 1
        out_name = base if seen[base] == 1 else f"{base}_{seen[base] - 1}"
        node = nodes.get(base)
        outputs.append(TensorSpec(out_name, tensors.get(k), _out_dtype(node) if node else "float32"))
    return Graph(ordered, inputs, outputs, "layer", cfg.get("name"))


def skip_first_nodes(by_name: dict, calls: dict, output_keys: list, report: bool = False) -> tuple:
    """Nested models built on their own Input own a node 0 that configs leave out (Keras's
    `_should_skip_first_node`), so references to their calls are one higher than the list index.
    Returns the fixed (calls, output_keys), or with `report` (calls, {layer: shift})."""
    refs = [k for cs in calls.values() for c in cs for k in c] + list(output_keys)
    offset = {
        name: 1
        for name, entry in by_name.items()
        if is_model_class(entry["class_name"]) and any(r[0] == name and r[1] >= len(calls[name]) for r in refs)
    }
    if report:
        return calls, offset
    if not offset:
        return calls, output_keys

    def fix(k: TensorKey) -> TensorKey:
        return (k[0], k[1] - offset[k[0]], k[2]) if k[0] in offset else k

    return {n: [[fix(k) for k in c] for c in cs] for n, cs in calls.items()}, [fix(k) for k in output_keys]


def _call_again(node: Node, entry: dict, inbound: list[str], in_shapes: list, depth: int) -> list:
    """A shared layer (or shared nested model) called once more: record the new call's shapes."""
    node.inbound.append(inbound)
    if node.subgraph is not None:
        outs = [o.shape for o in build_graph(_as_model(entry), in_shapes, depth + 1).outputs]
    else:
        info = L.infer(entry["class_name"], entry["config"], in_shapes, entry.get("module"))
        outs = info.output_shapes if info is not None else [None]
    node.call_shapes.append(outs)
    return outs


def _make_node(entry: dict, inbound: list[list[str]], in_shapes: list, depth: int) -> Node:
    cls, cfg, name = entry["class_name"], entry["config"], _layer_name(entry)
    in_shapes = _recorded_shapes(entry, in_shapes)
    flags = _flags(entry)
    node = Node(name, cls, cfg, inbound, flags=flags)
    trainable = cfg.get("trainable", True) is not False
    if is_model_class(cls) and isinstance(cfg, (dict, list)):
        sub = build_graph(_as_model(entry), in_shapes or None, depth + 1)
        node.subgraph = sub
        node.output_shapes = [o.shape for o in sub.outputs]
        params = [n.params for n in sub.nodes]
        tparams = [n.trainable_params for n in sub.nodes]
        node.params = None if None in params else sum(params)
        node.trainable_params = None if None in tparams or node.params is None else (sum(tparams) if trainable else 0)
    else:
        info = L.infer(cls, cfg, in_shapes, entry.get("module")) if "lambda" not in flags else None
        if info is None and cls == "Lambda":
            info = _lambda_info(cfg, in_shapes)
        if info is None:
            node.output_shapes = [None]
            node.params = node.trainable_params = None
            if "custom" not in flags and "lambda" not in flags:
                flags.append("unknown")
        else:
            node.output_shapes = info.output_shapes
            node.attrs["weight_specs"] = info.weights
            sizes = [w.size for w in info.weights]
            node.params = None if None in sizes else sum(sizes)
            if node.params is None:
                node.trainable_params = None
            else:
                node.trainable_params = sum(w.size for w in info.weights if w.trainable) if trainable else 0
    node.call_shapes = [list(node.output_shapes)]
    return node


def _recorded_shapes(entry: dict, in_shapes: list) -> list:
    """Unknown input shapes (after a custom layer) from what Keras 3 recorded in the config:
    the shapes of the call's keras tensors, or the layer's `build_config`."""
    if all(s is not None for s in in_shapes) and in_shapes:
        return in_shapes
    recorded: list = []
    nodes = entry.get("inbound_nodes") or []
    if nodes and isinstance(nodes[0], dict):
        recorded = [_shape(c.get("shape")) for c in _keras_tensor_configs(nodes[0].get("args", []))]
    if len(recorded) == len(in_shapes):
        return [s if s is not None else r for s, r in zip(in_shapes, recorded)]
    build = (entry.get("build_config") or {}).get("input_shape")
    if len(in_shapes) <= 1 and build is not None and not isinstance(build, dict):
        shape = _shape(build)
        if shape is not None:
            return [shape]
    return in_shapes


def _lambda_info(cfg: dict, in_shapes: list) -> L.LayerInfo:
    """A Lambda's output shape only when its config states it; its code is never run."""
    out = cfg.get("output_shape")
    s = in_shapes[0] if in_shapes else None
    if isinstance(out, (list, tuple)) and out and all(isinstance(d, int) or d is None for d in out):
        batch = s[0] if s is not None else None
        return L.LayerInfo([(batch, *out)])
    return L.LayerInfo([None])


def _flags(entry: dict) -> list[str]:
    cls, cfg = entry["class_name"], entry["config"]
    flags = []
    if cls == "Lambda":
        flags.append("lambda")
    module = entry.get("module")
    registered = entry.get("registered_name")
    builtin = L.sized(cls, module) or cls in KNOWN_WITHOUT_SHAPES or is_model_class(cls) or cls == "InputLayer"
    keras_module = bool(module) and str(module).startswith(KERAS_MODULES)  # Keras's own code, e.g. LayerScale
    if not keras_module and (
        bool(module) or (registered and ">" in str(registered)) or (not builtin and cls != "Lambda")
    ):
        flags.append("custom")
    for key in ("layer", "backward_layer"):
        inner = cfg.get(key) if isinstance(cfg, dict) else None
        if isinstance(inner, dict) and "class_name" in inner:
            for f in _flags({**inner, "config": inner.get("config") or {}}):
                if f not in flags:
                    flags.append(f)
    return flags


def _as_model(entry: dict) -> dict:
    return {"class_name": entry["class_name"], "config": entry["config"], "build_config": entry.get("build_config")}


def _layer_entry(lc: dict) -> dict:
    if not isinstance(lc, dict) or "class_name" not in lc:
        raise LoadError(f"layer entry without class_name: {str(lc)[:80]}")
    entry = dict(lc)
    entry["config"] = dict(lc.get("config") or {}) if isinstance(lc.get("config"), dict) else lc.get("config")
    if entry["config"] is None:
        entry["config"] = {}
    return entry


def _layer_name(entry: dict) -> str:
    cfg = entry.get("config")
    name = entry.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
    if not name:
        name = _snake(entry["class_name"])
        if isinstance(cfg, dict):
            cfg["name"] = name
    return str(name)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _shape(value: Any) -> tuple | None:
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        value = value[0]
    try:
        dims = tuple(None if d is None else int(d) for d in value)
    except (TypeError, ValueError):
        return None
    if any(d is not None and (d < 0 or d > 1 << 40) for d in dims):
        raise LoadError(f"absurd dimension in shape {list(value)}")
    if math.prod(d for d in dims if d is not None) > 1 << 50:
        raise LoadError(f"absurd shape {list(value)}")
    return dims


def _out_dtype(node: Node | None) -> str:
    if node is None:
        return "float32"
    dtype = node.config.get("dtype") if isinstance(node.config, dict) else None
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        return "float32"
    return dtype if isinstance(dtype, str) else "float32"


def tensor_keys(value: Any) -> list[TensorKey]:
    """`input_layers`/`output_layers` in any Keras spelling -> [(layer, node, tensor), ...]."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensor_keys(v)]
    if isinstance(value, (list, tuple)) and len(value) >= 3 and isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    out: list[TensorKey] = []
    for v in value or []:
        out.extend(tensor_keys(v))
    return out


def call_keys(entry: dict) -> list[list[TensorKey]]:
    """Every call of a layer as its list of input tensor keys (Keras 1/2 lists, Keras 3 dicts)."""
    calls = []
    for node in entry.get("inbound_nodes") or []:
        if isinstance(node, dict):
            keys: list[TensorKey] = []
            _collect_keras_tensors(node.get("args", []), keys)
            _collect_keras_tensors(node.get("kwargs", {}), keys)
            calls.append(keys)
        else:
            keys = []
            for item in node:
                if isinstance(item, (list, tuple)) and len(item) >= 3 and isinstance(item[0], str):
                    keys.append((item[0], int(item[1]), int(item[2])))
                    if len(item) > 3 and isinstance(item[3], dict):
                        _collect_keras_tensors(item[3], keys)
                        _collect_legacy_tensors(item[3], keys)
            calls.append(keys)
    return calls


def _collect_legacy_tensors(value: Any, out: list[TensorKey]) -> None:
    """Keras 2 call kwargs naming tensors as [layer, node, index] (MultiHeadAttention's `value`,
    `attention_mask`), in the order the walk reads them (`walk.call_arguments`)."""
    if isinstance(value, dict):
        for v in value.values():
            _collect_legacy_tensors(v, out)
    elif isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
        out.append((value[0], int(value[1]), int(value[2])))
    elif isinstance(value, list):
        for v in value:
            _collect_legacy_tensors(v, out)


def _keras_tensor_configs(value: Any) -> list[dict]:
    """Configs of the `__keras_tensor__` entries in a Keras 3 call's args/kwargs, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value.get("config") or {}]
        return [c for v in value.values() for c in _keras_tensor_configs(v)]
    if isinstance(value, (list, tuple)):
        return [c for v in value for c in _keras_tensor_configs(v)]
    return []


def _collect_keras_tensors(value: Any, out: list[TensorKey]) -> None:
    for cfg in _keras_tensor_configs(value):
        hist = cfg.get("keras_history")
        if hist:
            out.append((hist[0], int(hist[1]), int(hist[2])))


def _tensor_name(key: TensorKey) -> str:
    """ "layer" for a single-output single-call producer, else "layer[call][:k]"-style names."""
    name, call, k = key
    text = name if call == 0 else f"{name}@{call}"
    return text if k == 0 else f"{text}:{k}"
