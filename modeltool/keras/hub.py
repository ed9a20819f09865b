"""What the inputs of KerasHub models mean, read from the file's config without KerasHub.

KerasHub backbones take named inputs by convention: `token_ids` (indices into a vocabulary of
`vocabulary_size`), `padding_mask` (1 for real tokens, 0 for the padded tail), `segment_ids`
(BERT's sentence A/B, `num_segments` of them), `images`. Random floats cast to int would feed
ids out of range (an Embedding gather fails, or reads garbage on runtimes that do not check) and
masks of random 0/1 that no tokenizer writes; verification feeds what a tokenizer would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeltool.ir import Model

#: input name -> (meaning, config key holding the exclusive upper bound of its ids, default bound)
CONVENTIONS: dict[str, tuple[str, str | None, int | None]] = {
    "token_ids": ("token ids", "vocabulary_size", None),
    "encoder_token_ids": ("token ids", "vocabulary_size", None),
    "decoder_token_ids": ("token ids", "vocabulary_size", None),
    "segment_ids": ("segment ids", "num_segments", 2),
    "padding_mask": ("padding mask", None, None),
    "encoder_padding_mask": ("padding mask", None, None),
    "decoder_padding_mask": ("padding mask", None, None),
    "images": ("images", None, None),
    "pixel_values": ("images", None, None),
}
#: the kinds of input whose second dim is the sequence length
SEQUENCE_KINDS = ("token ids", "segment ids", "padding mask")


def sequence_inputs() -> set[str]:
    """The conventional input names whose dim 1 is the sequence length."""
    return {name for name, (kind, _, _) in CONVENTIONS.items() if kind in SEQUENCE_KINDS}


@dataclass(frozen=True)
class InputMeaning:
    """What one named input holds, and the range its values must stay in."""

    kind: str  # token ids | segment ids | padding mask | images
    high: int | None = None  # exclusive bound of ids

    def describe(self) -> str:
        return f"{self.kind} in [0, {self.high})" if self.high is not None else self.kind


def _library_configs(model: Model) -> Iterator[dict[str, Any]]:
    for _, node in model.graph.walk() if model.graph is not None else []:
        if isinstance(node.config, dict) and ("library" in node.flags or "vocabulary_size" in node.config):
            yield node.config


def input_meanings(model: Model | None) -> dict[str, InputMeaning]:
    """{input name: meaning} for the conventional inputs of a model-library model in `model`."""
    if model is None:
        return {}
    out: dict[str, InputMeaning] = {}
    for cfg in _library_configs(model):
        for name, (kind, key, default) in CONVENTIONS.items():
            high = cfg.get(key, default) if key else None
            if key and not (isinstance(high, int) and high > 0):
                high = default
            if key is None or high is not None:
                out.setdefault(name, InputMeaning(kind, high))
    return out


def valid_value(meaning: InputMeaning, shape: tuple, dtype: Any, rng: np.random.Generator) -> np.ndarray | None:
    """What a tokenizer would give for an input of this meaning: ids inside their range, a padding
    mask with a padded tail; None for a meaning with no such rule (images: any values do)."""
    if meaning.kind == "padding mask":
        return padding_mask(shape).astype(dtype)
    if meaning.high is not None:
        return rng.integers(0, meaning.high, size=shape).astype(dtype)
    return None


def padding_mask(shape: tuple) -> np.ndarray:
    """A tokenizer's padding mask: ones for the tokens, zeros for a padded tail, the first row
    unpadded and each later one shorter (never empty), so both the real and the padded
    positions are compared."""
    mask = np.ones(shape, dtype=np.int64)
    if len(shape) < 2 or shape[-1] < 2:
        return mask
    length = shape[-1]
    rows = mask.reshape(-1, length)
    for i in range(1, rows.shape[0]):
        rows[i, max(1, length - (i * length) // (rows.shape[0] + 1)) :] = 0
    return mask
