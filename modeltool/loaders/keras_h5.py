"""Keras HDF5 files: legacy full models (Keras 1/2/3 `model.save("x.h5")`), Keras 1/2
`save_weights` files and Keras 3 `.weights.h5`. Only attributes and dataset headers are read."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import Format
from modeltool.ir import Graph, Model, Weight
from modeltool.keras.weights import k3_weights, legacy_weights
from modeltool.loaders.keras_common import keras_model, training_summary


def _opener(path: str):
    import h5py

    @contextmanager
    def open_file():
        with h5py.File(path, "r") as f:
            yield f

    return open_file


def _attr_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _json_attr(path: str, f: Any, name: str) -> Any:
    from modeltool.formats import MAX_CONFIG_BYTES

    try:
        text = _attr_text(f.attrs[name])
        if len(text) > MAX_CONFIG_BYTES:
            raise LoadError(f"{path}: attribute {name!r} is {len(text)} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
        return json.loads(text)
    except RecursionError as exc:
        raise LoadError(f"{path}: attribute {name!r} nests too deeply to be a model config") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: attribute {name!r} is not valid JSON ({exc})") from exc


@contextmanager
def _open(path: str):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LoadError(f"{path}: truncated or corrupted HDF5 file ({str(exc).splitlines()[0][:160]})") from exc
    try:
        yield f
    except (OSError, RuntimeError) as exc:  # broken B-tree, unreadable object headers
        raise LoadError(f"{path}: corrupted HDF5 content ({str(exc).splitlines()[0][:160]})") from exc
    finally:
        f.close()


def _writer(f: Any) -> dict[str, str]:
    attrs = dict(f.attrs)
    if "model_weights" in f:
        attrs = {**dict(f["model_weights"].attrs), **attrs}
    out = {}
    for key in ("keras_version", "backend"):
        if key in attrs:
            out[key] = _attr_text(attrs[key])
    if "keras_version" not in out:
        out["keras_version"] = "1.x (no keras_version attribute)"
    return out


def load_model_h5(path: str, **options: Any) -> Model:
    """A legacy full-model H5 file: `model_config` + `model_weights` (+ optimizer state)."""
    with _open(path) as f:
        model_cfg = _json_attr(path, f, "model_config")
        training = None
        if "training_config" in f.attrs:
            tc = _json_attr(path, f, "training_config")
            training = training_summary(tc.get("optimizer_config"), tc.get("loss"), tc.get("metrics"), tc)
        writer = _writer(f)
        extra = {}
        if "optimizer_weights" in f:
            extra["optimizer_weights"] = len(_attr_list(f["optimizer_weights"].attrs.get("weight_names", [])))
        group = f["model_weights"] if "model_weights" in f else None

        def weights(graph: Graph | None) -> list[Weight]:
            if group is None:
                return []
            return legacy_weights(_opener(path), group, "model_weights", graph)

        return keras_model(path, Format.KERAS_H5, model_cfg, writer, training, weights, extra)


def _attr_list(value: Any) -> list:
    try:
        return list(value)
    except TypeError:
        return []


def read_weights_file(path: str, graph: Graph | None) -> list[Weight]:
    """Weights of any Keras HDF5 weights or model file, mapped onto `graph` when given."""
    from modeltool.formats import detect

    fmt = detect(path)
    with _open(path) as f:
        if fmt == Format.KERAS3_WEIGHTS:
            return k3_weights(_opener(path), f, graph)
        if fmt == Format.KERAS_H5:
            return legacy_weights(_opener(path), f["model_weights"], "model_weights", graph)
        if fmt == Format.KERAS_H5_WEIGHTS:
            if "layer_names" in f.attrs:
                return legacy_weights(_opener(path), f, "", graph)
            return legacy_weights(_opener(path), f["model_weights"], "model_weights", graph)
    raise LoadError(f"{path}: not a Keras weights file ({fmt.value})")


def load_weights_h5(path: str, *, graph: Graph | None = None, **options: Any) -> Model:
    """A Keras 1/2 `save_weights` file: layers and weights, no architecture."""
    with _open(path) as f:
        writer = _writer(f)
    return keras_model(path, Format.KERAS_H5_WEIGHTS, None, writer, None, lambda g: read_weights_file(path, graph))


def load_keras3_weights(path: str, *, graph: Graph | None = None, **options: Any) -> Model:
    """A Keras 3 `.weights.h5`: weights by attribute path, layer names from the `vars` groups."""
    extra = {}
    with _open(path) as f:
        if "optimizer" in f:
            extra["optimizer_variables"] = _count_datasets(f["optimizer"])
    return keras_model(path, Format.KERAS3_WEIGHTS, None, {}, None, lambda g: read_weights_file(path, graph), extra)


def _count_datasets(group: Any) -> int:
    n = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal n
        if hasattr(obj, "shape"):
            n += 1

    group.visititems(visit)
    return n
