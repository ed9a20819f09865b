"""Resource bounds: what a model file may declare before modeltool refuses to act on it.

Model files are untrusted input. A few hundred bytes can declare a 10^12-element weight, a layer
with 10^12 units, or a config nested thousands of levels deep; acting on them would exhaust memory
or the stack. These limits are far above any real model and turn such files into one clear error.
"""

from __future__ import annotations

import math

from modeltool.errors import LoadError

#: largest single tensor modeltool materializes (2^32 elements: 16 GiB of float32)
MAX_TENSOR_ELEMENTS = 1 << 32
#: largest model (parameters from its config) modeltool rebuilds with Keras
MAX_MODEL_PARAMS = 1 << 34
#: deepest nesting of models inside models
MAX_MODEL_NESTING = 32


def check_elements(shape: tuple | list | None, what: str) -> int:
    """The element count of `shape`, or LoadError when it is absurd (or negative)."""
    if shape is None:
        return 0
    dims = [int(d) for d in shape if d is not None]
    if any(d < 0 for d in dims):
        raise LoadError(f"{what}: negative dimension in shape {tuple(shape)}")
    n = math.prod(dims) if dims else 1
    if n > MAX_TENSOR_ELEMENTS:
        raise LoadError(
            f"{what}: shape {tuple(shape)} declares {n:.3g} elements, over modeltool's limit of "
            f"{MAX_TENSOR_ELEMENTS:.3g} for one tensor (a corrupted or hostile file)"
        )
    return n
