"""Inputs to run models on: seeded random ones shaped and typed like the model's inputs, or the
user's own from an `.npz`. Verification feeds them to both models; int8 calibration uses them too."""

from __future__ import annotations

import os
import re

import numpy as np

from modeltool.errors import UsageError
from modeltool.ir import Model, TensorSpec

Feed = dict[str, np.ndarray]
DEFAULT_BATCH = 2
DEFAULT_DIM = 32


#: embedding layers whose integer inputs index a table, and the config key of the table's size
EMBEDDINGS = {
    "Embedding": "input_dim",
    "ReversibleEmbedding": "input_dim",
    "TokenAndPositionEmbedding": "vocabulary_size",
}
#: layers that hold one row per position, and the config key of how many
POSITIONAL = {"PositionEmbedding": "sequence_length", "TokenAndPositionEmbedding": "sequence_length"}


def int_ranges(ir: Model | None) -> dict[str, int]:
    """Upper bounds of integer inputs that feed an Embedding (its `input_dim`; KerasHub's
    `vocabulary_size`)."""
    bounds: dict[str, int] = {}
    if ir is None or ir.graph is None:
        return bounds
    for _, node in ir.graph.walk():
        if node.op not in EMBEDDINGS:
            continue
        dim = node.config.get(EMBEDDINGS[node.op])
        for call in node.inbound:
            for name in call:
                if isinstance(dim, int) and dim > 0:
                    bounds[name] = min(bounds.get(name, dim), dim)
    return bounds


def longest_sequence(ir: Model | None) -> int | None:
    """The most positions the model has embeddings for (a PositionEmbedding's `sequence_length`, a
    KerasHub backbone's `max_sequence_length`): a longer random sequence would fail in Keras itself."""
    if ir is None or ir.graph is None:
        return None
    found = []
    for _, node in ir.graph.walk():
        cfg = node.config if isinstance(node.config, dict) else {}
        value = cfg.get(POSITIONAL[node.op]) if node.op in POSITIONAL else cfg.get("max_sequence_length")
        if isinstance(value, int) and value > 0:
            found.append(value)
    return min(found) if found else None


def feed_shape(ref: TensorSpec, other: TensorSpec | None, batch: int, fixed: tuple | None,
               length: int | None = None) -> tuple:  # fmt: skip
    """Concrete shape for one input: the user's, else a static dim from either model, else defaults
    (dim 1 no longer than `length`, the positions the model has)."""

    def default(i: int) -> int:
        if i == 0:
            return batch
        return min(DEFAULT_DIM, length) if i == 1 and length is not None else DEFAULT_DIM

    if fixed is not None:
        return tuple(d if d is not None else default(i) for i, d in enumerate(fixed))
    if ref.shape is None and (other is None or other.shape is None):
        raise UsageError(
            f"input {ref.name!r} has no known shape (not even its rank); give one with --input-shape "
            f"{ref.name}=D1,D2,.. (graph files: or --inputs {ref.name}=D1xD2..), or real inputs with --input data.npz"
        )
    a = list(ref.shape if ref.shape is not None else other.shape)  # type: ignore[union-attr]
    b = (
        list(other.shape)
        if other is not None and other.shape is not None and len(other.shape) == len(a)
        else [None] * len(a)
    )
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        d = x if x is not None else y
        out.append(d if d is not None else default(i))
    return tuple(out)


def random_feed(
    specs: list[TensorSpec],
    *,
    others: list[TensorSpec] | None = None,
    ir: Model | None = None,
    seed: int = 0,
    batch: int = DEFAULT_BATCH,
    shapes: dict[str, tuple] | None = None,
) -> Feed:
    """Seeded inputs shaped and typed per input; integer inputs stay within their Embedding's range."""
    from modeltool.keras.hub import input_meanings, valid_value

    rng = np.random.default_rng(seed)
    bounds = int_ranges(ir)
    length = longest_sequence(ir)
    meanings = input_meanings(ir)
    by_name = {s.name: s for s in others or []}
    feed: Feed = {}
    for i, spec in enumerate(specs):
        other = by_name.get(spec.name) or ((others or [])[i] if others and i < len(others) else None)
        shape = feed_shape(spec, other, batch, (shapes or {}).get(spec.name), length)
        dtype = np.dtype(spec.dtype or "float32")
        meaning = meanings.get(spec.name)
        valid = valid_value(meaning, shape, dtype, rng) if meaning is not None else None
        if valid is not None:
            feed[spec.name] = valid
        elif dtype.kind in "iu" or spec.name in bounds:  # float inputs of an Embedding hold indices too
            feed[spec.name] = rng.integers(0, bounds.get(spec.name, 10), size=shape).astype(dtype)
        elif dtype.kind == "b":
            feed[spec.name] = rng.random(shape) < 0.5
        else:
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feed


def npz_feed(path: str | os.PathLike, specs: list[TensorSpec]) -> Feed:
    """A user's inputs from an .npz: arrays keyed by input name, or arr_0.. by position."""
    path = os.fspath(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read input data ({exc})") from exc
    keys = list(data.keys())
    names = [s.name for s in specs]
    # TensorFlow users key by tensor name (`X:0`, as --inputs accepts it): that is input X
    by_key = {k: (k if k in names else _tensor_input(k, names)) for k in keys}
    stray = [k for k in keys if by_key[k] is None and not re.fullmatch(r"arr_\d+", k)]
    if stray:
        # a misnamed array would otherwise be ignored or fed to the wrong input
        raise UsageError(
            f"{path}: array(s) {', '.join(stray)} name no input of the model (inputs: {', '.join(names)}); key "
            "the arrays by input name, or save them by position (np.savez(path, x1, x2))"
        )
    feed: Feed = {}
    keyed = {name: k for k, name in by_key.items() if name is not None}
    for i, spec in enumerate(specs):
        if spec.name in keyed:
            feed[spec.name] = data[keyed[spec.name]]
        elif f"arr_{i}" in data:
            feed[spec.name] = data[f"arr_{i}"]
        else:
            raise UsageError(f"{path}: no array for input {spec.name!r} (arrays: {', '.join(keys)})")
    return feed


def _tensor_input(key: str, names: list[str]) -> str | None:
    """The input a TensorFlow tensor name (`X:0`) stands for, else None."""
    base, sep, index = key.rpartition(":")
    return base if sep and index == "0" and base in names else None


#: random calibration samples when the user gives none (TFLite and ONNX int8 alike)
CALIBRATION_SAMPLES = 32
RANDOM_CALIBRATION_WARNING = (
    "int8 calibrated on RANDOM inputs (no --calibration data.npz): the quantization ranges do not "
    "reflect real data and accuracy on real inputs may be poor"
)


def calibration_feeds(
    path: str | None, specs: list[TensorSpec], ir: Model | None, seed: int, shapes: dict | None = None
) -> tuple[list[Feed], str, bool]:
    """(one feed per sample, batch 1, keyed by input name; a description; whether it is random).
    The user's `--calibration` .npz (first axis = samples) when given, else seeded random inputs,
    which the caller must warn about: ranges calibrated on noise say nothing of real data."""
    if path:
        feed = npz_feed(path, specs)
        n = min(len(v) for v in feed.values())
        if n == 0:
            raise UsageError(f"{path}: the calibration arrays hold no samples (first axis is 0)")
        samples = [{s.name: feed[s.name][i : i + 1].astype(s.dtype or "float32") for s in specs} for i in range(n)]
        return samples, f"{os.path.basename(path)} ({n} samples)", False
    samples = [random_feed(specs, ir=ir, seed=seed + i, batch=1, shapes=shapes) for i in range(CALIBRATION_SAMPLES)]
    return samples, f"random ({CALIBRATION_SAMPLES} samples)", True
