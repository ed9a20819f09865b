"""The figures two arrays are compared by, and when they pass: elementwise closeness, the
reference's noise floor (with a cosine guard), and for quantized targets the cosine alone. Shared by
output verification (`verify.py`) and the layer-by-layer comparison (`localize.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NOISE_EPS = 1e-6
NOISE_FACTOR = 10.0
#: a pass within the noise floor also needs outputs pointing the same way (documented in docs/convert.md)
NOISE_MIN_COSINE = 0.999


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria of one comparison; `min_cosine` only for quantized targets."""

    atol: float
    rtol: float
    min_cosine: float | None = None


#: documented defaults per target precision (README, docs/convert.md)
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(1e-4, 1e-3),
    "float16": Tolerance(1e-2, 1e-2, 0.999),
    "dynamic": Tolerance(5e-2, 5e-2, 0.99),
    "int8": Tolerance(1e-1, 1e-1, 0.95),
}


def compare_arrays(ref: np.ndarray, out: np.ndarray, tol: Tolerance, noise: float | None) -> dict[str, Any]:
    """Error figures of one output and whether they pass."""
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    o = np.asarray(out, dtype=np.float64).reshape(-1)
    if r.size == 0:
        return {"max_abs": 0.0, "max_rel": 0.0, "mean_abs": 0.0, "cosine": 1.0, "passed": True, "verdict": "empty"}
    diff = np.abs(r - o)
    finite = np.isfinite(r) & np.isfinite(o)
    same_nonfinite = bool(np.all((np.isnan(r) == np.isnan(o)) & ((r == o) | finite | np.isnan(r))))
    d = diff[finite] if finite.any() else np.zeros(1)
    rel = d / np.maximum(np.abs(r[finite]), 1e-12) if finite.any() else np.zeros(1)
    max_abs, max_rel, mean_abs = float(d.max()), float(rel.max()), float(d.mean())
    denom = np.linalg.norm(r[finite]) * np.linalg.norm(o[finite]) if finite.any() else 0.0
    cosine = float(np.dot(r[finite], o[finite]) / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    close = same_nonfinite and bool(np.all(d <= tol.atol + tol.rtol * np.abs(r[finite])))
    verdict = "close"
    passed = close
    in_floor = same_nonfinite and noise is not None and noise > 0 and max_abs <= NOISE_FACTOR * noise
    if not passed and in_floor and cosine >= NOISE_MIN_COSINE:
        passed = True
        verdict = f"within the reference's noise floor and cosine >= {NOISE_MIN_COSINE:g} (numerically unstable model)"
    elif not passed and same_nonfinite and tol.min_cosine is not None and cosine >= tol.min_cosine:
        passed, verdict = True, f"cosine >= {tol.min_cosine:g} (quantized)"
    elif not passed and in_floor:
        # the reference itself moves this much under a 1e-6 input change: the outputs cannot tell a good
        # conversion from a bad one, and saying "values differ" alone would blame the conversion
        verdict = (f"values differ within {NOISE_FACTOR:g}x the reference's noise floor, but cosine {cosine:.3g} < "
                   f"{NOISE_MIN_COSINE:g}: a 1e-6 input change moves the reference this much (a chaotic model, "
                   "e.g. random weights); verify with trained weights or real inputs (--input)")
    elif not passed:
        verdict = "values differ" if same_nonfinite else "NaN/Inf differ"
        max_abs = max_abs if same_nonfinite else float("inf")
        if noise is not None and noise > 0:
            verdict += f" ({max_abs / noise:.3g}x the noise floor)"
    return {
        "max_abs": max_abs,
        "max_rel": max_rel,
        "mean_abs": mean_abs,
        "cosine": cosine,
        "passed": passed,
        "verdict": verdict,
    }


def tolerance_for(precision: str | None, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """The documented tolerance of a target precision (float32, float16, dynamic, int8), with the
    user's atol/rtol over it."""
    base = TOLERANCES.get(precision or "float32", TOLERANCES["float32"])
    return Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol, base.min_cosine)
