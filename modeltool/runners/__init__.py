"""Runners: one module per execution backend (Keras/TF, onnxruntime, the TFLite interpreter, a TF
SavedModel, a TF session over a frozen graph), each a context manager with `input_specs()` and
`infer(feed)`. Which backend runs a given file is decided in one place, `modeltool.sources`."""

from __future__ import annotations

from modeltool.runners.base import Feed, Runner

__all__ = ["Feed", "Runner"]
