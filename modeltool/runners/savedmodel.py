"""TF SavedModels run through a signature (default `serving_default`), as TF Serving would."""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import LoadError, UsageError
from modeltool.ir import TensorSpec
from modeltool.runners.base import Feed, Runner, dims


class SavedModelRunner(Runner):
    backend = "savedmodel"

    def __init__(self, path: str, signature: str | None = None) -> None:
        super().__init__(path)
        self.path, self.signature_name = path, signature
        self.fn: Any = None
        self.provider = "TensorFlow (CPU)"

    def _activate(self) -> None:
        tf = require("tensorflow", "running SavedModels")
        try:
            self.loaded = tf.saved_model.load(self.path)
        except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad directory
            raise LoadError(
                f"{self.path}: TensorFlow cannot load this SavedModel ({' '.join(str(exc).split())[:300]})"
            ) from exc
        sigs = dict(self.loaded.signatures)
        name = self.signature_name or ("serving_default" if "serving_default" in sigs else None)
        if name is None and len(sigs) == 1:
            name = next(iter(sigs))
        if name not in sigs:
            raise UsageError(
                f"{self.path}: signature {name!r} not found; available: {', '.join(sorted(sigs)) or 'none'}"
            )
        self.signature_name, self.fn = name, sigs[name]

    def _deactivate(self) -> None:
        self.fn = self.loaded = None

    def input_specs(self) -> list[TensorSpec]:
        _, kwargs = self.fn.structured_input_signature
        return [TensorSpec(k, dims(v.shape.as_list() if v.shape.rank is not None else None), v.dtype.name)
                for k, v in sorted(kwargs.items(), key=lambda kv: self._order(kv[0]))]  # fmt: skip

    def _order(self, key: str) -> int:
        names = [t.name.split(":")[0] for t in self.fn.inputs]
        return names.index(key) if key in names else len(names)

    def output_names(self) -> list[str]:
        outs = self.fn.structured_outputs
        return list(outs) if isinstance(outs, dict) else ["output_0"]

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        tf = require("tensorflow")
        specs = {s.name: s.dtype for s in self.input_specs()}
        out = self.fn(
            **{k: tf.constant(np.asarray(v).astype(specs[k], copy=False)) for k, v in feed.items() if k in specs}
        )
        return {k: out[k].numpy() for k in self.output_names()}

    def random_sources(self) -> tuple[list[str], list[str]]:
        from modeltool.tfgraph.randomness import random_sources

        graph = self.fn.graph
        ops, driving = random_sources(graph.as_graph_def(), [t.name for t in self.fn.inputs])
        keys = {t.name.split(":")[0]: k for k, t in zip(self._input_keys(), self.fn.inputs)}
        return ops, [keys.get(d, d) for d in driving]

    def _input_keys(self) -> list[str]:
        return [s.name for s in self.input_specs()]

    def _intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """The signature frozen into a graph, every op output fetched (`GraphRunner`)."""
        from modeltool.runners.tfgraph import GraphRunner
        from modeltool.tfgraph.native import from_saved_model

        with GraphRunner(from_saved_model(self.path, self.signature_name), self.label) as graph:
            return graph._intermediates(feed)
