"""Does a comparison prove anything? An output can agree between two models only because it carries
no information about the computation: values so small that any file is within the tolerance of
them (an autoencoder whose random-input outputs are 1e-20), a softmax saturated to exact 0s and 1s,
an output that is the same whatever the input (dead ReLUs, a random-weight network collapsing to a
constant). Such an agreement is INCONCLUSIVE, never a pass: the report names the output and what is
wrong with it, and the fix is real inputs (`--input real.npz`).
"""

from __future__ import annotations

import numpy as np

from modeltool.metrics import TOLERANCES, Tolerance

#: the advice every inconclusive verdict ends with
REAL_INPUTS = "verify on real inputs: --input real.npz"


def uninformative(name: str, ref: np.ndarray, tol: Tolerance) -> str | None:
    """Why the reference's values of one output cannot tell a right conversion from a wrong one,
    judged from the values alone, or None. Integer and boolean outputs (class ids, masks) are
    exact by nature and always count."""
    a = np.asarray(ref)
    if a.size == 0 or a.dtype.kind not in "fc":
        return None
    v = np.abs(a[np.isfinite(a)]).astype(np.float64)
    if v.size == 0:
        return f"{name}: no finite value"
    peak = float(v.max())
    atol = resolution(tol).atol
    if peak <= atol:
        return (f"{name}: every value is within the tolerance of zero (max |x| {peak:.2g} <= atol {atol:g}): "
                "any model computing about zero would pass (or give a smaller --atol)")  # fmt: skip
    values = a[np.isfinite(a)]
    if values.size > 1 and np.all((values == 0) | (values == 1)):
        return f"{name}: saturated: every value is exactly 0 or 1, so small errors cannot show"
    return None


def resolution(tol: Tolerance) -> Tolerance:
    """What counts as "the same value" when judging the reference alone: the comparison's tolerance,
    or for a quantized target (which passes on its cosine, not its coarse atol) the float32 one."""
    if tol.min_cosine is None:
        return tol
    base = TOLERANCES["float32"]
    return Tolerance(min(tol.atol, base.atol), min(tol.rtol, base.rtol))


def batch_constant(ref: np.ndarray, tol: Tolerance) -> bool:
    """True when every row of the batch holds the same values (within the resolution): the output
    may not depend on the input (confirmed or refuted by a second draw)."""
    tol = resolution(tol)
    a = np.asarray(ref)
    if a.ndim == 0 or a.shape[0] < 2 or a.dtype.kind not in "fc":
        return False
    rows = a.reshape(a.shape[0], -1).astype(np.float64)
    return bool(np.all(np.abs(rows - rows[0]) <= tol.atol + tol.rtol * np.abs(rows[0])))


def constant_reason(name: str, first: np.ndarray, second: np.ndarray | None, tol: Tolerance) -> str | None:
    """The verdict line for an output that came out the same for every row and, when a second draw
    of inputs was run, for that draw too; None when it moved."""
    if not batch_constant(first, tol):
        return None
    tol = resolution(tol)
    if second is not None:
        a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
        if a.shape != b.shape or not np.allclose(a.reshape(a.shape[0], -1)[0], b.reshape(b.shape[0], -1)[0],
                                                 atol=tol.atol, rtol=tol.rtol):  # fmt: skip
            return None
        return f"{name}: the same values for every input (each row of two random draws): it ignores the input"
    return f"{name}: the same values for every row of the inputs: it may not depend on the input"
