"""Sources: any model file opened as something that can be run, and (most formats) exported.

`open_source(path, options)` is the one place that decides, by the file's format, which kind of
source a file is; `open_runner(path, options)` is the one way any model file is run (a source's
reference runner). The table lists the source classes by format, imported when used.
"""

from __future__ import annotations

import importlib
import os

from modeltool.errors import UnsupportedError
from modeltool.formats import Format, describe, detect
from modeltool.options import CompareOptions, SourceOptions
from modeltool.runners.base import Runner
from modeltool.sources.base import ExportContext, OnnxGraph, Source

__all__ = ["ExportContext", "OnnxGraph", "Source", "open_runner", "open_source"]

KERAS = "modeltool.sources.keras:KerasSource"
GRAPH = "modeltool.sources.graph:GraphSource"
RUNTIME = "modeltool.sources.runtime:RuntimeSource"
TFLITE = "modeltool.sources.tflite:TFLiteSource"
SOURCES: dict[Format, str] = {
    Format.KERAS_H5: KERAS,
    Format.KERAS_V3: KERAS,
    Format.KERAS_JSON: KERAS,
    Format.KERAS_YAML: KERAS,
    Format.SAVEDMODEL: GRAPH,
    Format.GRAPHDEF: GRAPH,
    Format.CHECKPOINT: GRAPH,  # KERAS when an architecture comes with it (its own, or --config)
    Format.ONNX: RUNTIME,
    Format.TFLITE: TFLITE,
}
WEIGHTS_ONLY = (Format.KERAS_H5_WEIGHTS, Format.KERAS3_WEIGHTS)


def open_source(path: str | os.PathLike, options: SourceOptions | None = None) -> Source:
    """The file at `path` as a source; the loader options in `options` apply."""
    from modeltool.loaders import load, source_options

    options = options if isinstance(options, CompareOptions) else CompareOptions(**vars(options or SourceOptions()))
    path = os.fspath(path)
    fmt = detect(path)
    if fmt in WEIGHTS_ONLY:
        raise UnsupportedError(
            f"{path}: holds weights only, no architecture; convert the architecture (JSON/YAML with --weights-from "
            f"{os.path.basename(path)}, or a full .h5/.keras model)"
        )
    kwargs = {"weights_from": options.weights_from, "config": options.config}
    if fmt in (Format.GRAPHDEF, Format.CHECKPOINT):
        kwargs.update(inputs=options.inputs, outputs=options.outputs)
    ir = load(path, **source_options(**kwargs))
    target = SOURCES.get(fmt)
    if fmt == Format.CHECKPOINT and ir.config is not None:
        target = KERAS
    if target is None:
        raise UnsupportedError(f"{path}: {describe(fmt)} is not runnable (it holds no complete model to execute)")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(ir, options)


def open_runner(path: str | os.PathLike, options: SourceOptions | None = None) -> Runner:
    """An un-entered runner of any runnable model file: what the file computes, in the runtime that
    wrote it where one exists."""
    return open_source(path, options).reference()
