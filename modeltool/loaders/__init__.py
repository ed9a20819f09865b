"""Loaders: one module per format, all returning the common IR (`modeltool.ir.Model`).

The table below is the single place that says which module reads which format; modules are
imported only when their format is met, so reading an H5 file never imports onnx, and nothing here
imports TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from modeltool.errors import LoadError, ModelToolError, UnsupportedError
from modeltool.formats import Format, describe, detect
from modeltool.ir import Model

LOADERS: dict[Format, str] = {
    Format.KERAS_H5: "modeltool.loaders.keras_h5:load_model_h5",
    Format.KERAS_H5_WEIGHTS: "modeltool.loaders.keras_h5:load_weights_h5",
    Format.KERAS3_WEIGHTS: "modeltool.loaders.keras_h5:load_keras3_weights",
    Format.KERAS_V3: "modeltool.loaders.keras_zip:load",
    Format.KERAS_JSON: "modeltool.loaders.keras_text:load_json",
    Format.KERAS_YAML: "modeltool.loaders.keras_text:load_yaml",
    Format.ONNX: "modeltool.loaders.onnx_model:load",
    Format.TFLITE: "modeltool.loaders.tflite_model:load",
    Format.SAVEDMODEL: "modeltool.loaders.savedmodel:load",
    Format.CHECKPOINT: "modeltool.loaders.checkpoint:load",
    Format.GRAPHDEF: "modeltool.loaders.graphdef:load",
}


def _migrate_legacy_layouts(model: Model) -> None:
    """Keras 1/2 weight layouts become Keras 3's here, once, for everything downstream."""
    if model.config is None or model.graph is None or model.graph.level != "layer" or not model.weights:
        return
    from modeltool.keras.legacy_arrays import migrate_layouts

    notes = migrate_layouts(model)
    if notes:
        model.metadata.extra["legacy_layouts"] = notes


def parse_errors() -> tuple[type[BaseException], ...]:
    """What the parsing libraries raise on a corrupted file (h5py: OSError/KeyError/ValueError/RuntimeError;
    zipfile, zlib, struct, protobuf, YAML, text decoding). Only these mean "corrupted file"; any
    other exception is a bug of modeltool's and reaches the CLI as an internal error."""
    import struct
    import zipfile
    import zlib

    # h5py raises RuntimeError too ("Object visitation failed") on a damaged file
    errors: list[type[BaseException]] = [OSError, KeyError, ValueError, RuntimeError, EOFError, struct.error,
                                         zipfile.BadZipFile, zlib.error, UnicodeDecodeError]  # fmt: skip
    try:
        from google.protobuf.message import DecodeError

        errors.append(DecodeError)
    except ImportError:  # pragma: no cover - protobuf comes with onnx
        pass
    try:
        import yaml

        errors.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover - pyyaml is a core dependency
        pass
    return tuple(errors)


def source_options(**options: Any) -> dict[str, Any]:
    """The loader options that were given (None values dropped)."""
    return {k: v for k, v in options.items() if v}


def load(path: str | os.PathLike, **options: Any) -> Model:
    """Read any supported model file into the IR. Weight values stay on disk until asked for.

    Options: `weights_from` (a weights file to attach to an architecture-only config), `config`
    (the Keras architecture of a checkpoint), `inputs`/`outputs` (boundary of a GraphDef or TF1
    checkpoint graph: "NAME[:SHAPE],...").
    """
    fmt = detect(path)
    target = LOADERS[fmt]
    if options.get("weights_from") and fmt not in (Format.KERAS_JSON, Format.KERAS_YAML):
        raise UnsupportedError(f"{path}: --weights-from applies to JSON/YAML architecture configs only")
    if options.get("config") and fmt != Format.CHECKPOINT:
        raise UnsupportedError(f"{path}: --config applies to checkpoints only ({describe(fmt)} given)")
    if options.get("infer_shapes") and fmt != Format.ONNX:
        raise UnsupportedError(f"{path}: --infer-shapes applies to ONNX files only ({describe(fmt)} given)")
    if (options.get("inputs") or options.get("outputs")) and fmt not in (Format.GRAPHDEF, Format.CHECKPOINT):
        raise UnsupportedError(
            f"{path}: --inputs/--outputs apply to frozen GraphDefs and TF1 checkpoints ({describe(fmt)} given)"
        )
    options = {k: v for k, v in options.items() if v is not None}
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        model = func(os.fspath(path), **options)
        _migrate_legacy_layouts(model)
        return model
    except ModelToolError as exc:
        if os.fspath(path) in str(exc) or not isinstance(exc, LoadError):
            raise
        raise LoadError(f"{path}: {exc}") from exc  # every loader error names the file
    except (MemoryError, RecursionError) as exc:
        why = type(exc).__name__
        raise LoadError(f"{path}: {describe(fmt)} too large or too deeply nested to read ({why})") from exc
    except parse_errors() as exc:
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise LoadError(f"{path}: corrupted {describe(fmt)} ({type(exc).__name__}: {text})") from exc
