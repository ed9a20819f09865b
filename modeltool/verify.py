"""Is it the same model? Two runners on the same inputs, compared output by output.

Checks run in order (names, shapes, dtypes, values) and every failure is collected into one
report instead of stopping at the first. Values pass when they are close elementwise
(`|a - b| <= atol + rtol * |ref|`, as `numpy.allclose`), or when the difference is no larger than
the reference model's own noise floor: the change a 1e-6 relative perturbation of the inputs makes
to the reference's outputs. A random-weight model with activations of 1e5 can differ by more than
any fixed tolerance between two correct runtimes; the noise floor tells that apart from a broken
conversion, which differs by far more than the floor. Such a pass also needs a cosine similarity of
at least `NOISE_MIN_COSINE`: a floor made large by a random reference must never pass unrelated
outputs. The reference is run twice on the same inputs first; one that computes other numbers the
second time (random ops at inference) fails the verification, naming those ops. Quantized targets also pass on cosine
similarity, since their elementwise error is by design coarse.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modeltool.errors import UsageError
from modeltool.ir import Model, TensorSpec, format_shape
from modeltool.runners.base import Feed, Runner

NOISE_EPS = 1e-6
NOISE_FACTOR = 10.0
#: a pass within the noise floor also needs outputs pointing the same way (documented in docs/convert.md)
NOISE_MIN_COSINE = 0.999
DEFAULT_BATCH = 2
DEFAULT_DIM = 32


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


@dataclass
class OutputCheck:
    """The comparison of one output."""

    name: str
    target_name: str
    ref_shape: list | None
    target_shape: list | None
    ref_dtype: str | None
    target_dtype: str | None
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    cosine: float | None = None
    noise_floor: float | None = None
    passed: bool = False
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    """Everything a verification found; `passed` only when every output passed."""

    reference: str
    target: str
    reference_backend: str
    target_backend: str
    inputs: list[dict[str, Any]]
    tolerance: Tolerance
    outputs: list[OutputCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    input_source: str = "random"
    #: what computed the reference and why (Keras sources: the writer's runtime or the rebuild)
    reference_kind: str | None = None

    @property
    def passed(self) -> bool:
        return not self.problems and bool(self.outputs) and all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference": self.reference,
            "target": self.target,
            "reference_backend": self.reference_backend,
            "reference_kind": self.reference_kind,
            "target_backend": self.target_backend,
            "input_source": self.input_source,
            "inputs": self.inputs,
            "tolerance": asdict(self.tolerance),
            "outputs": [o.to_dict() for o in self.outputs],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """A table for people."""
        lines = [
            f"verify: {self.reference} [{self.reference_backend}] vs {self.target} [{self.target_backend}]",
            *([f"reference: {self.reference_kind}"] if self.reference_kind else []),
            f"inputs ({self.input_source}): "
            + ", ".join(f"{i['name']} {format_shape(tuple(i['shape']))} {i['dtype']}" for i in self.inputs),
            f"tolerance: atol={self.tolerance.atol:g} rtol={self.tolerance.rtol:g}"
            + (f" min_cosine={self.tolerance.min_cosine:g}" if self.tolerance.min_cosine else ""),
        ]
        head = (
            f"{'output':<24}{'shape':<18}{'max abs':>11}{'max rel':>11}{'mean abs':>11}{'cosine':>12}{'noise':>11}"
            "  result"
        )
        lines += [head, "-" * len(head)]
        for o in self.outputs:
            shape = format_shape(tuple(o.ref_shape)) if o.ref_shape is not None else "?"
            lines.append(
                f"{o.name[:23]:<24}{shape[:17]:<18}{_num(o.max_abs):>11}{_num(o.max_rel):>11}{_num(o.mean_abs):>11}"
                f"{_num(o.cosine, 6):>12}{_num(o.noise_floor):>11}  {'ok' if o.passed else 'FAIL'} {o.verdict}".rstrip()
            )
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append("result: " + ("PASSED" if self.passed else "FAILED"))
        return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


# ---------------------------------------------------------------- inputs


def int_ranges(ir: Model | None) -> dict[str, int]:
    """Upper bounds of integer inputs that feed an Embedding (its `input_dim`)."""
    bounds: dict[str, int] = {}
    if ir is None or ir.graph is None:
        return bounds
    for _, node in ir.graph.walk():
        if node.op != "Embedding":
            continue
        dim = node.config.get("input_dim")
        for call in node.inbound:
            for name in call:
                if isinstance(dim, int) and dim > 0:
                    bounds[name] = min(bounds.get(name, dim), dim)
    return bounds


def feed_shape(ref: TensorSpec, other: TensorSpec | None, batch: int, fixed: tuple | None) -> tuple:
    """Concrete shape for one input: the user's, else a static dim from either model, else defaults."""
    if fixed is not None:
        return tuple(d if d is not None else (batch if i == 0 else DEFAULT_DIM) for i, d in enumerate(fixed))
    a = list(ref.shape or ())
    b = (
        list(other.shape)
        if other is not None and other.shape is not None and len(other.shape) == len(a)
        else [None] * len(a)
    )
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        d = x if x is not None else y
        out.append(d if d is not None else (batch if i == 0 else DEFAULT_DIM))
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
    rng = np.random.default_rng(seed)
    bounds = int_ranges(ir)
    by_name = {s.name: s for s in others or []}
    feed: Feed = {}
    for i, spec in enumerate(specs):
        other = by_name.get(spec.name) or ((others or [])[i] if others and i < len(others) else None)
        shape = feed_shape(spec, other, batch, (shapes or {}).get(spec.name))
        dtype = np.dtype(spec.dtype or "float32")
        if dtype.kind in "iu" or spec.name in bounds:  # float inputs of an Embedding hold indices too
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
    feed: Feed = {}
    for i, spec in enumerate(specs):
        if spec.name in data:
            feed[spec.name] = data[spec.name]
        elif f"arr_{i}" in data:
            feed[spec.name] = data[f"arr_{i}"]
        elif len(specs) == 1 and len(keys) == 1:
            feed[spec.name] = data[keys[0]]
        else:
            raise UsageError(f"{path}: no array for input {spec.name!r} (arrays: {', '.join(keys)})")
    return feed


def perturbed(feed: Feed, eps: float = NOISE_EPS) -> Feed:
    """The same inputs nudged by a relative `eps` (float inputs only)."""
    out = {}
    for k, v in feed.items():
        if np.asarray(v).dtype.kind == "f":
            out[k] = (v * (1 + eps) + eps).astype(v.dtype)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- pairing and comparison


def pair_names(ref: list[str], target: list[str], what: str, warnings: list[str]) -> list[tuple[str, str]]:
    """Pairs by name; by position (with a warning) when names differ but counts match."""
    if set(ref) == set(target):
        return [(n, n) for n in ref]
    if len(ref) == len(target):
        warnings.append(f"{what} names differ ({', '.join(ref)} vs {', '.join(target)}); paired by position")
        return list(zip(ref, target))
    raise UsageError(
        f"cannot pair {what}: reference has {len(ref)} ({', '.join(ref)}), target {len(target)} ({', '.join(target)})"
    )


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


def compare(
    ref: Runner,
    target: Runner,
    feed: Feed,
    tol: Tolerance,
    *,
    input_source: str = "random",
    noise: bool = True,
) -> VerifyReport:
    """Run both runners on `feed` (keyed by the reference's input names) and compare every output."""
    warnings: list[str] = []
    ref_specs, tgt_specs = ref.input_specs(), target.input_specs()
    in_pairs = pair_names([s.name for s in ref_specs], [s.name for s in tgt_specs], "inputs", warnings)
    report = VerifyReport(
        ref.label, target.label, f"{ref.backend}: {ref.provider}", f"{target.backend}: {target.provider}",
        [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feed.items()], tol,
        warnings=warnings, input_source=input_source, reference_kind=getattr(ref, "reference", None),
    )  # fmt: skip
    ref_out = ref.infer(feed)
    unstable = _nondeterminism(ref, feed, ref_out, tol)
    if unstable:
        report.problems.append(unstable)
    tgt_out = target.infer({t: feed[r] for r, t in in_pairs})
    out_pairs = pair_names(list(ref_out), list(tgt_out), "outputs", warnings)
    floor = _noise_floor(ref, feed, ref_out) if noise and not unstable else {}
    for r_name, t_name in out_pairs:
        a, b = np.asarray(ref_out[r_name]), np.asarray(tgt_out[t_name])
        check = OutputCheck(r_name, t_name, list(a.shape), list(b.shape), a.dtype.name, b.dtype.name)
        check.noise_floor = floor.get(r_name)
        report.outputs.append(check)
        if a.shape != b.shape:
            check.verdict = f"shape {a.shape} vs {b.shape}"
            continue
        if a.dtype.kind != b.dtype.kind:
            check.verdict = f"dtype {a.dtype} vs {b.dtype}"
            continue
        for key, value in compare_arrays(a, b, tol, check.noise_floor).items():
            setattr(check, key, value)
    return report


def _nondeterminism(ref: Runner, feed: Feed, first: dict[str, np.ndarray], tol: Tolerance) -> str | None:
    """A problem line when the reference computes other outputs on the same inputs a second time
    (random ops at inference): a comparison with it would measure noise, not the conversion."""
    again = ref.infer(feed)
    moved = []
    for name, a in first.items():
        a, b = np.asarray(a, np.float64), np.asarray(again.get(name), np.float64)
        if a.shape != b.shape:
            moved.append(f"{name} (shape {a.shape} then {b.shape})")
            continue
        fin = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)) or np.any(
            np.abs(a - b)[fin] > tol.atol + tol.rtol * np.abs(a[fin])
        ):
            moved.append(f"{name} (max abs {float(np.abs(a - b)[fin].max()) if fin.any() else float('inf'):.3g})")
    if not moved:
        return None
    ops, driving = ref.random_sources()
    why = f"; random ops: {', '.join(ops[:6])}" if ops else ""
    steer = (
        f"; fix the inputs that drive them ({', '.join(driving)}) with --input data.npz" if driving
        else "; fix what drives them with --input data.npz"
    )  # fmt: skip
    return (
        f"the reference is not deterministic: two runs on the same inputs differ in {', '.join(moved[:6])}{why}{steer}"
    )


def _noise_floor(ref: Runner, feed: Feed, ref_out: dict[str, np.ndarray]) -> dict[str, float]:
    nudged = ref.infer(perturbed(feed))
    out = {}
    for k, v in ref_out.items():
        a, b = np.asarray(v, np.float64), np.asarray(nudged.get(k), np.float64)
        fin = np.isfinite(a) & np.isfinite(b)
        out[k] = float(np.abs(a - b)[fin].max()) if fin.any() else 0.0
    return out


def verify_files(
    reference: str | os.PathLike,
    target: str | os.PathLike,
    *,
    tolerance: Tolerance | None = None,
    input_data: str | None = None,
    seed: int = 0,
    batch: int = DEFAULT_BATCH,
    shapes: dict[str, tuple] | None = None,
    device: str = "cpu",
    custom_objects: dict[str, Any] | None = None,
    unsafe: bool = False,
    signature: str | None = None,
    inputs: str | None = None,
    outputs: str | None = None,
    config: str | None = None,
    reference_mode: str | None = None,
) -> VerifyReport:
    """Compare any two runnable model files (`modeltool verify A B`). `inputs`/`outputs`/`config`
    apply to whichever of the two is a GraphDef or checkpoint; `reference_mode` to Keras files (each
    runs in the runtime that wrote it unless "rebuild")."""
    from modeltool.runners import open_runner

    common = {"device": device, "signature": signature, "custom_objects": custom_objects, "unsafe": unsafe,
              "inputs": inputs, "outputs": outputs, "config": config, "reference": reference_mode}  # fmt: skip
    ref_runner = open_runner(reference, **common)
    tgt_runner = open_runner(target, **common)
    ir = getattr(ref_runner, "ir", None) or getattr(tgt_runner, "ir", None)
    with ref_runner as ref, tgt_runner as tgt:
        specs = ref.input_specs()
        if input_data:
            feed, source = npz_feed(input_data, specs), os.path.basename(os.fspath(input_data))
        else:
            feed = random_feed(specs, others=tgt.input_specs(), ir=ir, seed=seed, batch=batch, shapes=shapes)
            source = f"random, seed {seed}"
        return compare(ref, tgt, feed, tolerance or TOLERANCES["float32"], input_source=source)
