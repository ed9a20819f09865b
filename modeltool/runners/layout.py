"""A runner seen through a layout change: a channels-first ONNX file compared with its channels-last source.

`convert --inputs-as-nchw x` writes a model whose input `x` is NCHW while the source (Keras, TF)
takes NHWC. Verification must stay exact, so instead of loosening anything the written model is
wrapped: it shows the source's NHWC input specs, transposes each feed to NCHW on the way in and the
channels-first outputs back to NHWC on the way out. The numbers compared are then the same numbers,
only moved; a tolerance never hides a wrong transpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.ir import TensorSpec
from modeltool.runners.base import Feed, Runner


def to_channels_first(rank: int) -> tuple[int, ...]:
    """The permutation NHWC -> NCHW (and N..C -> NC.. for any rank >= 3)."""
    return (0, rank - 1, *range(1, rank - 1))


def to_channels_last(rank: int) -> tuple[int, ...]:
    """The permutation NCHW -> NHWC."""
    return (0, *range(2, rank), 1)


class ChannelsFirstRunner(Runner):
    """`inner` (a runner of the channels-first file) with channels-last inputs and outputs."""

    def __init__(self, inner: Runner, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        super().__init__(inner.label)
        self.inner = inner
        self.inputs, self.outputs = set(inputs), set(outputs)
        self.backend = inner.backend

    def _activate(self) -> None:
        self.inner.__enter__()
        self.provider = self.inner.provider

    def _deactivate(self) -> None:
        self.inner.__exit__(None, None, None)

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for spec in self.inner.input_specs():
            if spec.name in self.inputs and spec.shape is not None:
                shape = tuple(spec.shape[i] for i in to_channels_last(len(spec.shape)))
                spec = TensorSpec(spec.name, shape, spec.dtype)
            specs.append(spec)
        return specs

    def output_names(self) -> list[str]:
        return self.inner.output_names()

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        out = self.inner.infer(self._moved(feed))
        return {k: np.transpose(v, to_channels_last(np.ndim(v))) if k in self.outputs else v for k, v in out.items()}

    def _intermediates(self, feed: Feed) -> list[tuple[str, Any]]:
        """The file's own tensors, as they are (`--localize` reads channels-first tensors in the
        reference's layout itself)."""
        return self.inner.intermediates(self._moved(feed))

    def _moved(self, feed: Feed) -> Feed:
        return {
            k: np.ascontiguousarray(np.transpose(v, to_channels_first(np.ndim(v)))) if k in self.inputs else v
            for k, v in feed.items()
        }
