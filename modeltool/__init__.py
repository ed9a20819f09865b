"""modeltool: inspect, convert, edit and verify TensorFlow/Keras models.

`modeltool.load(path)` reads any supported file into the common IR (`modeltool.ir.Model`) without
importing TensorFlow; the CLI (`modeltool ...`) is a thin layer over this API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modeltool.ir import Model

__all__ = ["load", "detect", "__version__"]


def load(path: str, **options: Any) -> Model:
    """Read a model file of any supported format into a `modeltool.ir.Model`."""
    from modeltool.loaders import load as _load

    return _load(path, **options)


def detect(path: str) -> str:
    """The format name of `path`, decided by content."""
    from modeltool.formats import detect as _detect

    return _detect(path).value
