"""What every runner shares: a context-managed session, its input specs and `infer(feed)`.

A runner wraps one execution backend (Keras/TF, onnxruntime, the TFLite interpreter, a TF
SavedModel). Subclasses implement `_activate`, `input_specs`, `output_names` and `_infer`; this
base class owns the lifecycle and turns backend failures into one-line errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.errors import LoadError, UnsupportedError
from modeltool.feeds import Feed
from modeltool.ir import TensorSpec

__all__ = ["Feed", "Runner", "dims"]


class Runner:
    """Run a model on numpy inputs, keyed by input name; outputs keyed by output name, in order."""

    #: "keras", "onnxruntime", "tflite", "savedmodel"
    backend = "runner"

    def __init__(self, label: str) -> None:
        self.label = label
        self.active = False
        self.provider: str | None = None  # what actually ran (e.g. CUDAExecutionProvider)

    def __enter__(self) -> Runner:
        self._activate()
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._deactivate()
        self.active = False

    def _activate(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def input_specs(self) -> list[TensorSpec]:  # pragma: no cover - interface
        raise NotImplementedError

    def output_names(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """Every intermediate tensor of one run, as (name, value) in topological order: Keras layer
        outputs, ONNX node outputs, TFLite tensors, TF op outputs. What `verify --localize` pairs."""
        if not self.active:
            raise RuntimeError(f"{self.label}: runner used outside its `with` block")
        try:
            return [(k, np.array(v)) for k, v in self._intermediates(feed)]
        except (LoadError, UnsupportedError):
            raise
        except Exception as exc:  # noqa: BLE001 - any backend error becomes one line naming the model
            raise LoadError(f"{self.label}: running with intermediates exposed failed ({type(exc).__name__}: "
                            f"{_line(exc)})") from exc  # fmt: skip

    def _intermediates(self, feed: Feed) -> list[tuple[str, Any]]:
        raise UnsupportedError(f"{self.label}: {self.backend} cannot expose intermediate tensors")

    def layer_inputs(self) -> dict[str, list[str]]:
        """{intermediate name: names of the intermediates it is computed from}, where the backend knows
        (Keras layers); empty otherwise."""
        return {}

    def random_sources(self) -> tuple[list[str], list[str]]:
        """(ops that draw random numbers at inference, input names that steer them); what a
        non-deterministic reference is reported with. Backends that cannot tell return nothing."""
        return [], []

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        """Outputs for one batch of inputs, as numpy arrays."""
        if not self.active:
            raise RuntimeError(f"{self.label}: runner used outside its `with` block")
        try:
            out = self._infer(feed)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend error becomes one line naming the model
            raise LoadError(f"{self.label}: running the model failed ({type(exc).__name__}: {_line(exc)})") from exc
        return {k: np.array(v) for k, v in out.items()}  # a copy: interpreters reuse their buffers


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def dims(shape: Any) -> tuple | None:
    """A backend's shape (ints, None, -1, strings for symbolic dims) as a modeltool shape."""
    if shape is None:
        return None
    return tuple(int(d) if isinstance(d, (int, np.integer)) and d >= 0 else None for d in shape)
