"""modeltool: inspect, convert, edit and verify TensorFlow/Keras models.

`modeltool.load(path)` reads any supported file into the common IR (`modeltool.ir.Model`) without
importing TensorFlow; `modeltool.summary(model)` and `modeltool.to_dict(model)` show it as
`inspect` does. The CLI (`modeltool ...`) is a thin layer over this API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modeltool.ir import Model

__all__ = ["load", "detect", "summary", "to_dict", "__version__"]


def load(path: str, **options: Any) -> Model:
    """Read a model file of any supported format into a `modeltool.ir.Model`."""
    from modeltool.loaders import load as _load

    return _load(path, **options)


def summary(model: Model, *, width: int = 100) -> str:
    """A `model.summary()`-like text view of a loaded model, with a header of what the file says
    (what `modeltool inspect` prints)."""
    from modeltool.ops.summary import render_summary

    return render_summary(model, width=width)


def to_dict(model: Model, *, weights: bool = False, stats: bool = False) -> dict[str, Any]:
    """The JSON form of a loaded model (what `modeltool inspect --json` prints)."""
    from modeltool.ops.summary import model_to_dict

    return model_to_dict(model, weights=weights, stats=stats)


def detect(path: str) -> str:
    """The format name of `path`, decided by content."""
    from modeltool.formats import detect as _detect

    return _detect(path).value
