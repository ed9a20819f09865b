"""SavedModel directories of every origin (Keras 3 `model.export`, `tf.saved_model.save` of a
tf.Module, Keras 2 `model.save(dir)`, TF1 `SavedModelBuilder`), read from their protobufs.

No graph is built and TensorFlow is not imported: tags, signatures (keys, tensor names, shapes,
dtypes, method), variables (from `variables/` through the object graph), the op histogram of the
graph and its functions, and assets all come from `saved_model.pb` and the variables index.
Keras 2 SavedModels also carry their layer-level architecture (in `keras_metadata.pb`, or in the
root object's metadata before TF 2.5): it becomes the IR graph, with the variables on its layers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import Graph, Metadata, Model, Signature, TensorSpec, Weight
from modeltool.keras.weights import attach
from modeltool.loaders.keras_common import config_graph, path_size
from modeltool.tfgraph import protos
from modeltool.tfgraph.bundle import OBJECT_GRAPH_KEY, Bundle
from modeltool.tfgraph.graph import function_nodes, op_histogram
from modeltool.tfgraph.variables import VARIABLE_LISTS, is_training_state, order_in_layers, resolve

DEFAULT_SIGNATURE = "serving_default"
INIT_OP = "__saved_model_init_op"
KERAS_MODEL_IDS = ("_tf_keras_network", "_tf_keras_model", "_tf_keras_sequential")


def read_saved_model(path: str) -> Any:
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    try:
        if os.path.isfile(pb):
            if os.path.getsize(pb) == 0:
                raise LoadError(f"{pb}: file is empty")
            with open(pb, "rb") as fh:
                return protos.parse("SavedModel", fh.read())
        from google.protobuf import text_format

        msg = protos.new("SavedModel")
        with open(pbtxt, encoding="utf-8") as fh:
            text_format.Parse(fh.read(), msg, allow_unknown_field=True)
        return msg
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - DecodeError / ParseError
        raise LoadError(
            f"{path}: saved_model.pb is truncated or corrupted ({' '.join(str(exc).split())[:160]})"
        ) from exc


def pick_meta_graph(sm: Any, path: str) -> Any:
    """The meta graph TF Serving would load: tagged `serve`, else the only/first one."""
    if not sm.meta_graphs:
        raise LoadError(f"{path}: saved_model.pb holds no meta graph")
    for mg in sm.meta_graphs:
        if "serve" in mg.meta_info_def.tags:
            return mg
    return sm.meta_graphs[0]


def _spec(key: str, info: Any) -> TensorSpec:
    shape = protos.shape_of(info.tensor_shape) if info.HasField("tensor_shape") else None
    tensor = info.name or (info.coo_sparse.values_tensor_name if info.HasField("coo_sparse") else None)
    return TensorSpec(key, shape, protos.dtype_name(info.dtype) if info.dtype else None, tensor or None)


def signatures_of(meta_graph: Any) -> list[Signature]:
    """Every SignatureDef (the init op excluded), `serving_default` first, then by name."""
    out = []
    for entry in meta_graph.signature_def:
        if entry.key == INIT_OP:
            continue
        sig = entry.value
        ins = [_spec(e.key, e.value) for e in sorted(sig.inputs, key=lambda e: e.key)]
        outs = [_spec(e.key, e.value) for e in sorted(sig.outputs, key=lambda e: e.key)]
        out.append(Signature(entry.key, ins, outs, sig.method_name or None))
    return sorted(out, key=lambda s: (s.name != DEFAULT_SIGNATURE, s.name))


def keras_config(path: str, meta_graph: Any) -> tuple[dict[str, Any] | None, str | None]:
    """A Keras 2 model's architecture config, from keras_metadata.pb or the root object's metadata."""
    candidates = []
    km = os.path.join(path, "keras_metadata.pb")
    if os.path.isfile(km):
        try:
            with open(km, "rb") as fh:
                meta = protos.parse("KerasSavedMetadata", fh.read())
            candidates = [(n.identifier, n.metadata) for n in meta.nodes if n.node_path == "root"]
        except Exception:  # noqa: BLE001 - an unreadable keras_metadata.pb leaves the TF view intact
            candidates = []
    nodes = meta_graph.object_graph_def.nodes
    if not candidates and nodes:
        candidates = [(nodes[0].user_object.identifier, nodes[0].user_object.metadata)]
    for identifier, metadata in candidates:
        if identifier not in KERAS_MODEL_IDS or not metadata:
            continue
        try:
            data = json.loads(metadata)
        except ValueError:
            continue
        cfg = _untuple(data.get("config"))
        if isinstance(cfg, (dict, list)) and (isinstance(cfg, list) or "layers" in cfg):
            model_cfg = {"class_name": data.get("class_name", "Functional"), "config": cfg}
            if data.get("keras_version"):
                model_cfg["keras_version"] = data["keras_version"]
            return model_cfg, "keras_metadata.pb" if os.path.isfile(km) else "object graph metadata"
    return None, None


def _untuple(value: Any) -> Any:
    """Keras 2's SavedModel metadata encodes tuples and TensorShapes as {"class_name": "__tuple__",
    "items": [...]}; the config readers expect the lists `model.to_json()` writes."""
    if isinstance(value, dict):
        if value.get("class_name") in ("__tuple__", "TensorShape") and "items" in value:
            return [_untuple(v) for v in value["items"]]
        return {k: _untuple(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untuple(v) for v in value]
    return value


def _variables(path: str, meta_graph: Any) -> tuple[list[Weight], list[Weight], Bundle | None]:
    prefix = os.path.join(path, "variables", "variables")
    if not os.path.isfile(prefix + ".index"):
        return [], [], None
    bundle = Bundle(prefix)
    names = bundle.object_paths()
    saved_names = _saved_variable_names(meta_graph, bundle)
    model_vars, state_vars = [], []
    seen: set[tuple] = set()
    for key, entry in sorted(bundle.entries.items(), key=lambda kv: _flat_list_last(names.get(kv[0], kv[0]))):
        if entry.dtype in ("string", "resource", "variant") or key == OBJECT_GRAPH_KEY:
            continue
        name = names.get(key, key.split("/.ATTRIBUTES")[0])
        saved = saved_names.get(key)
        # Keras 3 exports track each variable from two lists; same TF name and same bytes = one variable
        ident = (saved, entry.shape, entry.dtype, entry.crc32c)
        if saved and ident in seen:
            continue
        seen.add(ident)
        state = is_training_state(name)
        if saved and name.split("/")[0] in VARIABLE_LISTS and not state:
            name = saved  # "conv/kernel" says more than "variables/3"
        w = Weight(name, None, name.rsplit("/", 1)[-1], entry.shape, entry.dtype, not state, bundle.reader(key))
        w.layer = saved.rsplit("/", 1)[0] if saved and "/" in saved else saved  # until a Keras graph claims it
        (state_vars if state else model_vars).append(w)
    return model_vars, state_vars, bundle


def _flat_list_last(path: str) -> tuple:
    """Per-layer paths first, then `variables/N`, then Keras's private `_all_variables/N`."""
    head = path.split("/")[0]
    return (head in VARIABLE_LISTS, head.startswith("_"), path)


def _saved_variable_names(meta_graph: Any, bundle: Bundle) -> dict[str, str]:
    """{checkpoint key: the variable's TF name (`dense/kernel`)} through the SavedObjectGraph."""
    graph = bundle.object_graph
    nodes = meta_graph.object_graph_def.nodes
    if graph is None or not nodes:
        return {}
    out = {}
    for i, node in enumerate(graph.nodes):
        if i < len(nodes) and nodes[i].HasField("variable") and nodes[i].variable.name:
            for attr in node.attributes:
                if attr.name == "VARIABLE_VALUE":
                    out[attr.checkpoint_key] = nodes[i].variable.name.split(":")[0]
    return out


def _assets(path: str, meta_graph: Any) -> list[str]:
    files = {a.filename for a in meta_graph.asset_file_def}
    adir = os.path.join(path, "assets")
    if os.path.isdir(adir):
        files |= set(os.listdir(adir))
    return sorted(files)


def load(path: str, **options: Any) -> Model:
    sm = read_saved_model(path)
    mg = pick_meta_graph(sm, path)
    info = mg.meta_info_def
    signatures = signatures_of(mg)
    model_vars, state_vars, _ = _variables(path, mg)
    warnings: list[str] = []
    cfg, cfg_source = keras_config(path, mg)
    graph: Graph | None = None
    if cfg is not None:
        try:
            graph = config_graph(path, cfg, warnings)
        except LoadError as exc:
            warnings.append(f"Keras architecture in {cfg_source} not readable ({exc}); showing the TF view")
    if graph is not None:
        model_vars = _on_layers(model_vars, graph)
        attach(graph, model_vars)
    else:
        for w in model_vars:
            w.layer = w.layer or (w.name.rsplit("/", 1)[0] if "/" in w.name else None)
    nodes = list(function_nodes(mg.graph_def))
    extra: dict[str, Any] = {
        "tags": [list(m.meta_info_def.tags) for m in sm.meta_graphs],
        "op_histogram": op_histogram(nodes),
        "functions": len(mg.graph_def.library.function),
        "assets": _assets(path, mg),
        "training_state_variables": len(state_vars),
        "origin": _origin(path, mg, cfg is not None),
    }
    if cfg_source:
        extra["architecture"] = cfg_source
    if not signatures:
        warnings.append("the SavedModel has no signatures: it cannot be served or converted as is")
    writer = {"tensorflow_version": info.tensorflow_version, "keras_version": (cfg or {}).get("keras_version")}
    meta = Metadata(
        format=Format.SAVEDMODEL,
        format_description=describe(Format.SAVEDMODEL),
        file_size=path_size(path),
        writer={k: str(v) for k, v in writer.items() if v},
        extra=extra,
    )
    return Model(path, meta, graph, model_vars, signatures, warnings)


def _on_layers(weights: list[Weight], graph: Graph) -> list[Weight]:
    subpaths, out = {}, []
    for w in weights:
        where = resolve(w.name, graph)
        if where is None:
            out.append(w)
            continue
        layer, sub, role = where
        name = "/".join(p for p in (layer, sub, role) if p)
        subpaths[name] = sub
        out.append(Weight(name, layer, role, w.shape, w.dtype, w.trainable, w.reader))
    return order_in_layers(out, graph, subpaths)


def _origin(path: str, mg: Any, keras2: bool) -> str:
    """Who wrote it, as far as the files tell."""
    if keras2:
        return "Keras 2 model.save (SavedModel format)"
    nodes = mg.object_graph_def.nodes
    if not nodes:
        return "TF1 SavedModelBuilder (no object graph)"
    ids = {n.user_object.identifier for n in nodes if n.HasField("user_object")}
    names = {c.local_name for c in nodes[0].children}
    if "_default_save_signature" in names or any("keras" in i for i in ids) or "endpoint" in names:
        return "Keras 3 model.export / ExportArchive"
    return "tf.saved_model.save (TF2 object graph)"
