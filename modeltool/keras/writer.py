"""Keras files written with h5py and zipfile alone: `.weights.h5`, `.keras` and legacy `.h5`.

Weight surgery on H5/.keras/config files must not need TensorFlow. These writers lay out exactly
what Keras 3 itself writes (and reads back; the tests load every output with Keras 3):
- `.weights.h5`: `layers/<snake class name>[_N]/[<sub-object>/]vars/<index>`, the attribute paths
  `layers.WeightSpec.k3` describes, with each object's name in its `vars` group's `name` attribute;
- `.keras`: a zip of `config.json`, `metadata.json` and that `.weights.h5` as `model.weights.h5`;
- legacy `.h5`: `model_config` plus `model_weights/<layer>/` groups whose `weight_names` list each
  layer's weights in Keras's `trainable_weights + non_trainable_weights` order.
A `Placement` is one weight: where it goes and its value.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeltool.ir import Graph
from modeltool.keras.weights import k3_groups

KERAS_VERSION = "3.0.0"  # the Keras format written; Keras 3 reads it whatever its minor version


@dataclass
class Placement:
    """One weight of the written model: its layer path, role, Keras 3 sub-object path and index."""

    layer: str
    role: str
    value: np.ndarray
    k3_sub: str = ""
    k3_index: int = 0
    trainable: bool = True
    prefix: str = ""  # Keras path between layer and role, for legacy weight names


def write_weights_h5(target: Any, graph: Graph, placements: list[Placement], model_name: str) -> None:
    """A Keras 3 `.weights.h5` at `target` (a path or a binary file object)."""
    import h5py

    by_layer: dict[str, list[Placement]] = {}
    for p in placements:
        by_layer.setdefault(p.layer, []).append(p)
    with h5py.File(target, "w") as f:
        f.create_group("layers")
        f.create_group("vars").attrs["name"] = model_name
        for node, path, gpath in k3_groups(graph):
            f.require_group(f"{gpath}/vars").attrs["name"] = node.name
            if node.subgraph is not None:
                f.require_group(f"{gpath}/layers")
            for p in by_layer.get(path, []):
                group = f"{gpath}/{p.k3_sub}" if p.k3_sub else gpath
                parts = p.k3_sub.split("/") if p.k3_sub else []
                for i in range(len(parts)):  # every sub-object (forward_layer, cell) has its vars group
                    sub = f.require_group(f"{gpath}/{'/'.join(parts[: i + 1])}/vars")
                    sub.attrs.setdefault("name", parts[i])
                f.require_group(f"{group}/vars").create_dataset(str(p.k3_index), data=p.value)


#: how Keras 3 names its model classes in `.keras` configs (`load_model` resolves them by module)
MODEL_MODULES = {"Functional": ("keras.src.models.functional", "Functional"), "Sequential": ("keras", None)}


def archive_config(config: dict[str, Any]) -> dict[str, Any]:
    """A model config as `.keras` stores it: model classes carry their module, nested ones too
    (`model.to_json()` leaves them out, and `load_model` cannot resolve `Functional` without it)."""
    import copy

    out = copy.deepcopy(config)

    def fix(entry: dict[str, Any]) -> None:
        if entry.get("class_name") in MODEL_MODULES and not entry.get("module"):
            entry["module"], entry["registered_name"] = MODEL_MODULES[entry["class_name"]]
        cfg = entry.get("config")
        for layer in cfg.get("layers", []) if isinstance(cfg, dict) else []:
            if isinstance(layer, dict):
                fix(layer)

    fix(out)
    return out


def write_keras(path: str, config: dict[str, Any], graph: Graph, placements: list[Placement]) -> None:
    """A `.keras` archive: config.json, metadata.json, model.weights.h5 (built in memory)."""
    config = archive_config(config)
    buffer = io.BytesIO()
    name = (config.get("config") or {}).get("name", "model") if isinstance(config.get("config"), dict) else "model"
    write_weights_h5(buffer, graph, placements, name)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": "modeltool"}  # fmt: skip
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buffer.getvalue())


def write_legacy_h5(path: str, config: dict[str, Any], graph: Graph, placements: list[Placement]) -> None:
    """A legacy full-model `.h5` as Keras 3's `model.save("x.h5")` writes it."""
    import h5py

    by_top: dict[str, list[Placement]] = {}
    for p in placements:
        by_top.setdefault(p.layer.split("/")[0], []).append(p)
    order = {path: i for i, (path, _) in enumerate(graph.walk())}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["backend"] = "tensorflow"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([n.name.encode() for n in graph.nodes], dtype=object)
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = KERAS_VERSION
        for node in graph.nodes:
            group = g.create_group(node.name)
            mine = sorted(by_top.get(node.name, []), key=lambda p: (order.get(p.layer, 0), not p.trainable))
            mine = sorted(mine, key=lambda p: not p.trainable)  # trainable_weights + non_trainable_weights
            names = []
            for p in mine:
                name = "/".join(x for x in (p.layer, p.prefix, p.role) if x)
                while name in names:
                    name += "_"
                names.append(name)
                group.create_dataset(name, data=p.value)
            group.attrs["weight_names"] = np.array([n.encode() for n in names], dtype=object) if names else np.array([])
        g.create_group("top_level_model_weights").attrs["weight_names"] = np.array([])
