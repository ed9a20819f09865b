"""Keras targets: re-save the rebuilt model (migrating legacy H5 to `.keras`), or write the
architecture alone (`.json` as `to_json()` gives it, `.yaml` which Keras dropped), or the weights
as a TF checkpoint (`tf.train.Checkpoint` rooted at the model, as `save_weights` in TF format did).
Each output is read back by Keras 3 in `roundtrip` before it is called done."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import UnsupportedError
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source
from modeltool.targets import Target


def export_keras(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    native = source.keras_model()
    native.save(path)
    return {"keras_format": "keras_v3"}


def export_h5(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    native = source.keras_model()
    native.save(path)
    return {"keras_format": "legacy_h5"}


def export_weights(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    native = source.keras_model()
    native.save_weights(path)
    return {"keras_format": "keras3_weights"}


def export_json(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    native = source.keras_model()
    with open(path, "w", encoding="utf-8") as f:
        f.write(native.to_json())
    return {"keras_format": "json"}


def export_yaml(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    native = source.keras_model()
    yaml = require("yaml", "writing YAML")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(json.loads(native.to_json()), f, sort_keys=False)
    return {"keras_format": "yaml"}


def export_checkpoint(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """`path` is a folder here: the checkpoint `ckpt.index`/`ckpt.data-*` plus the `checkpoint` file."""
    native = source.keras_model()
    tf = require("tensorflow", "writing a TF checkpoint")
    os.makedirs(path, exist_ok=True)
    ckpt = tf.train.Checkpoint(root=native)
    prefix = ckpt.write(os.path.join(path, "ckpt"))
    with open(os.path.join(path, "checkpoint"), "w", encoding="utf-8") as f:
        f.write('model_checkpoint_path: "ckpt"\nall_model_checkpoint_paths: "ckpt"\n')
    return {"keras_format": "tf_checkpoint", "prefix": os.path.basename(prefix)}


def roundtrip(source: Source, target: Target, path: str) -> tuple[dict[str, Any], Any]:
    """Load the written file back with Keras 3 and compare every weight with the model written.
    Returns the details and the model Keras loaded (None for an architecture alone), which
    `convert` then runs against the source's reference like any other target."""
    native = source.keras_model()
    custom_objects = getattr(source, "custom", None)
    keras = require("keras", "checking the written Keras file")
    tf = require("tensorflow")
    from modeltool.keras.semantics import legacy_objects, uses_legacy_objects

    extra: dict[str, Any] = {}
    objects = {**legacy_objects(), **(custom_objects or {})}
    expected = [np.asarray(v) for v in native.get_weights()]
    if target in (Target.KERAS, Target.H5):
        loaded = keras.saving.load_model(path, custom_objects=objects, compile=False, safe_mode=True)
    elif target == Target.WEIGHTS_H5:
        loaded = keras.models.clone_model(native)
        loaded.load_weights(path)
    elif target in (Target.JSON, Target.YAML):
        text = open(path, encoding="utf-8").read()
        cfg = json.loads(text) if target == Target.JSON else require("yaml").safe_load(text)
        loaded = keras.models.model_from_json(json.dumps(cfg), custom_objects=objects)
        if len(loaded.weights) != len(native.weights):
            raise UnsupportedError(
                f"{path}: reloaded architecture has {len(loaded.weights)} weights, expected {len(native.weights)}"
            )
        return {"roundtrip": "architecture reloaded", "weights": len(loaded.weights)}, None
    elif target == Target.CHECKPOINT:
        loaded = keras.models.clone_model(native)
        tf.train.Checkpoint(root=loaded).read(os.path.join(path, "ckpt")).assert_existing_objects_matched()
    else:  # pragma: no cover - the table only routes Keras targets here
        raise UnsupportedError(target)
    if uses_legacy_objects(json.loads(native.to_json())):
        extra["load_with"] = (
            "custom_objects=modeltool.keras.semantics.legacy_objects() (the file keeps the Keras 1/2 hard_sigmoid "
            "as modeltool>legacy_hard_sigmoid; Keras 3's own hard_sigmoid computes other numbers)"
        )
    got = [np.asarray(v) for v in loaded.get_weights()]
    if len(got) != len(expected) or any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(got, expected)):
        raise UnsupportedError(f"{path}: weights read back by Keras differ from those written")
    return {"roundtrip": "reloaded by Keras 3, weights identical", "weights": len(got), **extra}, loaded
