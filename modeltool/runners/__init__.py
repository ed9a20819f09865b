"""Runners: one module per backend, chosen here by the format of the file to run.

`open_runner(path)` returns an un-entered runner; use it as a context manager. Keras files of every
version are rebuilt as Keras 3 models (never loaded by handing the file to Keras)."""

from __future__ import annotations

import os
from typing import Any

from modeltool.errors import UnsupportedError
from modeltool.formats import Format, describe, detect
from modeltool.runners.base import Feed, Runner

KERAS_FORMATS = {Format.KERAS_H5, Format.KERAS_V3, Format.KERAS_JSON, Format.KERAS_YAML}

__all__ = ["Feed", "Runner", "open_runner"]


def open_runner(
    path: str | os.PathLike,
    *,
    device: str = "cpu",
    signature: str | None = None,
    custom_objects: dict[str, Any] | None = None,
    unsafe: bool = False,
    weights_from: str | None = None,
    inputs: str | None = None,
    outputs: str | None = None,
    config: str | None = None,
    reference: str | None = None,
) -> Runner:
    """A runner for any runnable model file (Keras, ONNX, TFLite, SavedModel, frozen GraphDef,
    TF1 checkpoint with its .meta, checkpoint + Keras architecture)."""
    from modeltool.loaders import load, source_options

    path = os.fspath(path)
    fmt = detect(path)
    if fmt in KERAS_FORMATS or (fmt == Format.CHECKPOINT and config):
        from modeltool.keras.rebuild import build, check_safe
        from modeltool.runners.keras import keras_reference

        ir = load(path, **source_options(weights_from=weights_from, config=config))
        check_safe(ir, unsafe=unsafe, custom_objects=dict(custom_objects or {}))
        rebuild = lambda: build(ir, custom_objects=custom_objects, unsafe=unsafe)  # noqa: E731
        return keras_reference(ir, rebuild, reference, custom_objects)
    if fmt in (Format.GRAPHDEF, Format.CHECKPOINT):
        from modeltool.runners.tfgraph import GraphRunner
        from modeltool.tfgraph.native import from_ir

        ir = load(path, **source_options(inputs=inputs, outputs=outputs))
        if ir.config is not None:  # a Keras 2 checkpoint that stores its own architecture
            from modeltool.keras.rebuild import build
            from modeltool.runners.keras import KerasRunner

            return KerasRunner(build(ir, custom_objects=custom_objects, unsafe=unsafe), ir)
        runner = GraphRunner(from_ir(ir), path)
        runner.ir = ir  # type: ignore[attr-defined]
        return runner
    if fmt == Format.ONNX:
        from modeltool.runners.onnxruntime import OnnxRunner

        return OnnxRunner(path, device)
    if fmt == Format.TFLITE:
        from modeltool.runners.tflite import TFLiteRunner

        return TFLiteRunner(path)
    if fmt == Format.SAVEDMODEL:
        from modeltool.runners.savedmodel import SavedModelRunner

        return SavedModelRunner(path, signature)
    raise UnsupportedError(f"{path}: {describe(fmt)} is not runnable (it holds no complete model to execute)")
