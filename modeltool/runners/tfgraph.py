"""Frozen GraphDefs and TF1 checkpoints run in a TF session, fed and fetched by tensor name."""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.ir import TensorSpec
from modeltool.runners.base import Feed, Runner
from modeltool.tfgraph.native import FrozenGraph, session_callable


class GraphRunner(Runner):
    backend = "tensorflow-graph"

    def __init__(self, frozen: FrozenGraph, label: str | None = None) -> None:
        super().__init__(label or frozen.source)
        self.frozen = frozen
        self.session: Any = None
        self.provider = "TensorFlow session (CPU)"

    def _activate(self) -> None:
        self.session, self.graph = session_callable(self.frozen)

    def _deactivate(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = self.graph = None

    def input_specs(self) -> list[TensorSpec]:
        return self.frozen.input_specs()

    def output_names(self) -> list[str]:
        return [e.name for e in self.frozen.outputs]

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        fg = self.frozen
        feed_dict = {e.tensor: np.asarray(feed[e.name]).astype(e.dtype or "float32", copy=False)
                     for e in fg.inputs if e.name in feed}  # fmt: skip
        values = self.session.run([e.tensor for e in fg.outputs], feed_dict=feed_dict)
        return dict(zip(self.output_names(), values))

    def random_sources(self) -> tuple[list[str], list[str]]:
        from modeltool.tfgraph.randomness import random_sources

        ops, driving = random_sources(self.frozen.graph_def, [e.tensor for e in self.frozen.inputs])
        names = {e.tensor.split(":")[0]: e.name for e in self.frozen.inputs}
        return ops, [names.get(d, d) for d in driving]

    def _intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """Every float output of every op but constants, fetched in one session run."""
        fg = self.frozen
        feed_dict = {e.tensor: np.asarray(feed[e.name]).astype(e.dtype or "float32", copy=False)
                     for e in fg.inputs if e.name in feed}  # fmt: skip
        fetches = []
        skip = {"Const", "Placeholder", "Identity", "NoOp", "Assert"}
        fed = {e.tensor for e in fg.inputs}
        for op in self.graph.get_operations():
            if op.type in skip:
                continue
            fetches += [t for t in op.outputs if t.dtype.is_floating and t.name not in fed]
        values = self.session.run(fetches, feed_dict=feed_dict)
        return [(t.name, v) for t, v in zip(fetches, values)]
