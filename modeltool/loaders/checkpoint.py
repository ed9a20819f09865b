"""TensorFlow checkpoints: object-based (tf.train.Checkpoint, Keras save_weights in TF format)
and TF1 name-based (Saver), given as a prefix, one of its files, or a directory.

Variables are listed from the index without TensorFlow; values are read on demand. Training state
(optimizer slots and counters, metric accumulators) is counted apart from the model's weights.
An architecture makes a checkpoint a complete model: the one Keras 2 stores in the checkpoint
itself (`/.ATTRIBUTES/OBJECT_CONFIG_JSON`), or the user's `config` (JSON/YAML/H5/.keras), to which
the variables are mapped by their object paths. A TF1 checkpoint with its `.meta` graph is
complete as a graph.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from modeltool.errors import LoadError, UsageError
from modeltool.formats import Format, describe
from modeltool.ir import Graph, Metadata, Model, Signature, Weight
from modeltool.keras.weights import attach
from modeltool.loaders.keras_common import config_graph, path_size
from modeltool.tfgraph import protos
from modeltool.tfgraph.bundle import OBJECT_GRAPH_KEY, Bundle, resolve_prefix, state_names_missing
from modeltool.tfgraph.graph import boundary, op_graph, op_histogram, parse_io
from modeltool.tfgraph.variables import is_training_state, order_in_layers, resolve

ROOT_CONFIG_KEY = "/.ATTRIBUTES/OBJECT_CONFIG_JSON"
#: TF1 optimizer slots and counters (name-based checkpoints have no object graph to say so)
TF1_STATE = re.compile(
    r"(^|/)(global_step|beta[12]_power(_\d+)?)$|/(Adam|Adam_\d+|Momentum|RMSProp(_\d+)?|Adagrad|Ftrl(_\d+)?|"
    r"Adadelta(_\d+)?|ExponentialMovingAverage)$"
)


def load(path: str, *, config: str | None = None, inputs: Any = None, outputs: Any = None, **options: Any) -> Model:
    prefix = resolve_prefix(path)
    bundle = Bundle(prefix)
    warnings: list[str] = []
    missing = state_names_missing(path)
    if missing:
        warnings.append(
            f"the 'checkpoint' state file names {missing}, which is absent; read {os.path.basename(prefix)}"
        )
    object_based = bundle.object_graph is not None
    names = bundle.object_paths() if object_based else {}
    model_vars, state_vars = [], []
    for key, entry in bundle.entries.items():
        if entry.dtype in ("string", "resource", "variant") or key == OBJECT_GRAPH_KEY:
            continue
        name = names.get(key, key)
        state = is_training_state(name) if object_based else bool(TF1_STATE.search(key))
        w = Weight(name, None, name.rsplit("/", 1)[-1], entry.shape, entry.dtype, not state,
                   bundle.reader(key) if not entry.sliced else None)  # fmt: skip
        (state_vars if state else model_vars).append(w)
    extra: dict[str, Any] = {
        "checkpoint_prefix": prefix,
        "checkpoint_kind": "object-based" if object_based else "name-based (TF1 Saver)",
        "training_state_variables": len(state_vars),
        "training_state_params": sum(w.size for w in state_vars),
    }
    arch_cfg, arch_source = _architecture(bundle, config)
    graph, signatures, training = None, [], None
    if arch_cfg is not None:
        graph = config_graph(prefix, arch_cfg, warnings)
        model_vars = _map_to_layers(model_vars, graph, warnings, arch_source)
        attach(graph, model_vars)
        extra["architecture"] = arch_source
        training = _optimizer(bundle)
    elif os.path.isfile(prefix + ".meta"):
        graph, signatures = _meta_graph(prefix + ".meta", inputs, outputs, extra)
        warnings += extra.pop("boundary_notes", [])
        for w in model_vars:
            w.layer = w.name  # a TF1 variable is its own node in the graph
        extra["architecture"] = os.path.basename(prefix + ".meta")
    else:
        for w in model_vars:
            w.layer = w.name.rsplit("/", 1)[0] if "/" in w.name else None
        warnings.append(
            "no architecture: variables only. Pass --config model.json|.yaml|.h5|.keras to make it a complete model"
        )
    meta = Metadata(
        format=Format.CHECKPOINT,
        format_description=describe(Format.CHECKPOINT),
        file_size=path_size(prefix + ".index")
        + sum(
            path_size(bundle.shard_path(i)) for i in range(bundle.num_shards) if os.path.exists(bundle.shard_path(i))
        ),  # fmt: skip
        training=training,
        extra=extra,
    )
    return Model(prefix, meta, graph, model_vars, signatures, warnings, config=arch_cfg)


def _architecture(bundle: Bundle, config: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The model config: the user's --config, else the one Keras 2 wrote into the checkpoint."""
    if config:
        from modeltool.loaders import load as load_any

        arch = load_any(config)
        if arch.config is None:
            raise UsageError(f"--config {config}: holds no Keras architecture ({arch.metadata.format_description})")
        return arch.config, os.path.basename(config)
    if ROOT_CONFIG_KEY in bundle.entries:
        try:
            cfg = json.loads(bundle.string_scalar(ROOT_CONFIG_KEY))
        except (ValueError, UnicodeDecodeError):
            return None, None
        inner = cfg.get("config") if isinstance(cfg, dict) else None
        if isinstance(inner, (dict, list)) and (isinstance(inner, list) or "layers" in inner):
            return cfg, "stored in the checkpoint (Keras OBJECT_CONFIG_JSON)"
    return None, None


def _optimizer(bundle: Bundle) -> dict[str, Any] | None:
    key = "optimizer" + ROOT_CONFIG_KEY
    if key not in bundle.entries:
        return None
    try:
        cfg = json.loads(bundle.string_scalar(key))
    except (ValueError, UnicodeDecodeError):
        return None
    from modeltool.loaders.keras_common import training_summary

    return training_summary(cfg, None, None, {})


def _map_to_layers(weights: list[Weight], graph: Graph, warnings: list[str], source: str | None) -> list[Weight]:
    subpaths: dict[str, str] = {}
    mapped, unmapped = [], []
    for w in weights:
        where = resolve(w.name, graph)
        if where is None:
            unmapped.append(w.name)
            continue
        layer, sub, role = where
        name = "/".join(p for p in (layer, sub, role) if p)
        subpaths[name] = sub
        mapped.append(Weight(name, layer, role, w.shape, w.dtype, w.trainable, w.reader))
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (" ..." if len(unmapped) > 5 else "")
        warnings.append(f"{len(unmapped)} variable(s) match no layer of the architecture ({source}): {shown}")
    return order_in_layers(mapped, graph, subpaths) + [w for w in weights if w.name in unmapped]


def read_meta_graph(path: str) -> Any:
    """A `.meta` file (MetaGraphDef)."""
    try:
        with open(path, "rb") as fh:
            return protos.parse("MetaGraphDef", fh.read())
    except Exception as exc:  # noqa: BLE001 - DecodeError
        raise LoadError(f"{path}: not a valid MetaGraphDef ({' '.join(str(exc).split())[:160]})") from exc


def _meta_graph(path: str, inputs: Any, outputs: Any, extra: dict[str, Any]) -> tuple[Graph, list[Signature]]:
    from modeltool.loaders.savedmodel import signatures_of

    meta = read_meta_graph(path)
    graph_def = meta.graph_def
    signatures = signatures_of(meta)
    ins, outs, boundary_notes = boundary(graph_def, parse_io(inputs, "inputs"), parse_io(outputs, "outputs"), path)
    extra["op_histogram"] = op_histogram(graph_def.node)
    extra["tensorflow_version"] = meta.meta_info_def.tensorflow_version or None
    extra["boundary_notes"] = boundary_notes
    return op_graph(graph_def, ins, outs, os.path.basename(path)), signatures
