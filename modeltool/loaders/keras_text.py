"""Architecture-only configs: `model.to_json()` output and YAML (Keras 2's `to_yaml`).

YAML is parsed with a safe loader that understands only the `!!python/tuple` tag Keras 2 wrote
(as a list); any other Python tag is refused, since the full YAML loader can construct arbitrary
objects. A separate weights file can be attached with `weights_from`.
"""

from __future__ import annotations

import json
from typing import Any

from modeltool.errors import FormatError, LoadError
from modeltool.formats import MAX_CONFIG_BYTES, NOT_A_MODEL_TEXT, SUPPORTED, Format
from modeltool.ir import Graph, Model, Weight
from modeltool.loaders.keras_common import keras_model, training_summary


def _read_text(path: str) -> str:
    import os

    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise LoadError(f"{path}: config is {size} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path}: config is not UTF-8 text ({exc})") from exc


def _model(path: str, fmt: Format, data: Any, weights_from: str | None) -> Model:
    if not isinstance(data, dict):  # detection saw Keras keys, but the document is no mapping
        raise FormatError(f"{path}: {NOT_A_MODEL_TEXT}; supported: {SUPPORTED}")
    if "class_name" not in data:
        raise LoadError(f"{path}: not a Keras model config (no top-level class_name)")
    writer = {"keras_version": data.get("keras_version"), "backend": data.get("backend")}
    compile_cfg = data.get("compile_config")
    training = None
    if compile_cfg:
        training = training_summary(compile_cfg.get("optimizer"), compile_cfg.get("loss"),
                                    compile_cfg.get("metrics"), compile_cfg)  # fmt: skip
    loader = None
    if weights_from is not None:
        from modeltool.loaders.keras_h5 import read_weights_file

        def loader(graph: Graph | None) -> list[Weight]:
            return read_weights_file(str(weights_from), graph)

    extra = {"weights_from": str(weights_from)} if weights_from else {}
    return keras_model(path, fmt, data, writer, training, loader, extra)


def load_json(path: str, *, weights_from: str | None = None, **options: Any) -> Model:
    try:
        data = json.loads(_read_text(path))
    except RecursionError as exc:
        raise LoadError(f"{path}: JSON nests too deeply to be a model config") from exc
    except ValueError as exc:
        raise LoadError(f"{path}: invalid JSON ({exc})") from exc
    return _model(path, Format.KERAS_JSON, data, weights_from)


def load_yaml(path: str, *, weights_from: str | None = None, **options: Any) -> Model:
    import yaml

    class KerasYamlLoader(yaml.SafeLoader):
        """SafeLoader plus the one Python tag Keras 2 emitted."""

    def tuple_as_list(loader: yaml.SafeLoader, node: yaml.Node) -> list:
        return loader.construct_sequence(node)  # type: ignore[arg-type]

    KerasYamlLoader.add_constructor("tag:yaml.org,2002:python/tuple", tuple_as_list)
    try:
        data = yaml.load(_read_text(path), Loader=KerasYamlLoader)  # noqa: S506 - SafeLoader subclass
    except RecursionError as exc:
        raise LoadError(f"{path}: YAML nests too deeply to be a model config") from exc
    except yaml.constructor.ConstructorError as exc:
        raise LoadError(f"{path}: YAML uses a Python tag modeltool will not construct ({exc.problem})") from exc
    except yaml.YAMLError as exc:
        raise LoadError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc
    return _model(path, Format.KERAS_YAML, data, weights_from)
