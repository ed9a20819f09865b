"""What the two-route targets (ONNX, TFLite) share: the `--via` choices and the one check a Keras
source needs before its TensorFlow route runs."""

from __future__ import annotations

from modeltool.errors import UsageError
from modeltool.options import ConvertOptions
from modeltool.sources import Source

ROUTES = ("auto", "direct", "tf")


def check_via(options: ConvertOptions) -> None:
    if options.via not in ROUTES:
        raise UsageError(f"--via {options.via}: choose from {', '.join(ROUTES)}")


def require_tensorflow_route(source: Source, reason: str) -> None:
    """A Keras source on the TensorFlow route needs Keras on TensorFlow: one line says so when the
    user chose another backend."""
    if source.kind == "keras":
        from modeltool.sources.keras import require_tensorflow_backend

        require_tensorflow_backend(source.path, f"the TensorFlow route ({reason})")
