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
from modeltool.evidence import REAL_INPUTS, batch_constant, constant_reason, uninformative
from modeltool.feeds import npz_feed, random_feed
from modeltool.formats import Format
from modeltool.ir import Model, format_shape
from modeltool.metrics import (  # the figures and tolerances are part of verify's API too
    NOISE_EPS,
    NOISE_MIN_COSINE,
    TOLERANCES,
    Tolerance,
    compare_arrays,
    tolerance_for,
)

__all__ = ["NOISE_MIN_COSINE", "TOLERANCES", "Tolerance", "VerifyReport", "compare", "compare_arrays",
           "compare_runners", "tolerance_for", "verify_files"]  # fmt: skip
from modeltool.options import CompareOptions, VerifyOptions
from modeltool.runners.base import Feed, Runner


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
    #: what else was checked (a second sequence length)
    notes: list[str] = field(default_factory=list)
    #: why agreeing outputs prove nothing (`modeltool.evidence`): the verdict is then INCONCLUSIVE
    inconclusive: list[str] = field(default_factory=list)
    #: outputs whose every batch row came out the same (a second draw of inputs tells)
    constant: list[str] = field(default_factory=list, repr=False)
    input_source: str = "random"
    #: what computed the reference and why (Keras sources: the writer's runtime or the rebuild)
    reference_kind: str | None = None
    #: every intermediate tensor compared (`--localize`), a `modeltool.localize.Localization`
    localization: Any = None

    @property
    def agrees(self) -> bool:
        """Every output within its tolerance and no problem: the numbers agree."""
        return not self.problems and bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def passed(self) -> bool:
        """The numbers agree and they prove something (not INCONCLUSIVE)."""
        return self.agrees and not self.inconclusive

    @property
    def verdict(self) -> str:
        return "PASSED" if self.passed else ("INCONCLUSIVE" if self.agrees else "FAILED")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "inconclusive": list(self.inconclusive),
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
            "notes": list(self.notes),
            "localization": self.localization.to_dict() if self.localization is not None else None,
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
        lines += [f"note: {n}" for n in self.notes]
        if self.localization is not None:
            lines.append(self.localization.render())
        if self.verdict == "INCONCLUSIVE":
            lines += [f"inconclusive: {r}" for r in self.inconclusive]
            lines.append(f"the outputs agree but prove nothing about the conversion: {REAL_INPUTS}")
        lines.append(f"result: {self.verdict}")
        return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


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
        if check.passed:
            reason = uninformative(r_name, a, tol)
            if reason:
                report.inconclusive.append(reason)
                check.verdict += " (inconclusive)"
            elif batch_constant(a, tol):
                report.constant.append(r_name)
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


def compare_runners(
    reference: Runner, target: Runner, options: CompareOptions, tolerance: Tolerance, *, ir: Model | None = None,
    localize: str = "never",
) -> VerifyReport:
    """Run two un-entered runners on the same inputs (the user's .npz, else seeded random ones shaped
    by both models) and compare every output; `localize` ("never", "always", "on_failure") also
    compares every intermediate tensor (`modeltool.localize`)."""
    with reference as ref, target as tgt:
        specs = ref.input_specs()
        if options.input_data:
            feed, source = npz_feed(options.input_data, specs), os.path.basename(options.input_data)
        else:
            feed = random_feed(specs, others=tgt.input_specs(), ir=ir, seed=options.seed, batch=options.batch,
                               shapes=options.input_shapes)  # fmt: skip
            source = f"random, seed {options.seed}"
        report = compare(ref, tgt, feed, tolerance, input_source=source)
        second = None if options.input_data else _second_length(specs, tgt.input_specs(), feed, ir, options)
        if second is not None:
            again = compare(ref, tgt, second, tolerance, input_source=source)
            length = next(v.shape[1] for k, v in second.items() if v.shape != feed[k].shape)
            for check in again.outputs:
                check.name = f"{check.name} @{length}"
            report.outputs += again.outputs
            report.problems += [f"at sequence length {length}: {p}" for p in again.problems]
            report.inconclusive += [r for r in again.inconclusive if r not in report.inconclusive]
            report.notes.append(
                f"dynamic sequence length checked: outputs compared at length {feed[next(iter(feed))].shape[1]} "
                f"and again at {length} (rows marked @{length})"
            )
        if report.agrees and report.constant:
            _confirm_constant(report, ref, specs, tgt.input_specs(), feed, ir, options, tolerance)
        if localize == "always" or (localize == "on_failure" and not report.agrees):
            from modeltool.localize import localize as run_localization

            pairs = pair_names([s.name for s in specs], [s.name for s in tgt.input_specs()], "inputs", [])
            target_feed = {t: feed[r] for r, t in pairs}
            report.localization = run_localization(ref, tgt, feed, tolerance, target_feed=target_feed)
        return report


def _confirm_constant(report: VerifyReport, ref: Runner, specs: list, tgt_specs: list, feed: Feed,
                      ir: Model | None, options: CompareOptions, tol: Tolerance) -> None:  # fmt: skip
    """Outputs the same for every row: a second random draw tells whether they depend on the input
    at all (the user's own inputs are taken as they are: rows alike there are the user's choice)."""
    if options.input_data:
        return
    first = ref.infer(feed)
    second = ref.infer(random_feed(specs, others=tgt_specs, ir=ir, seed=options.seed + 7, batch=options.batch,
                                   shapes={k: v.shape for k, v in feed.items()}))  # fmt: skip
    for name in report.constant:
        reason = constant_reason(name, first[name], second.get(name), tol)
        if reason:
            report.inconclusive.append(reason)
            for check in report.outputs:
                if check.name == name:
                    check.verdict += " (inconclusive)"


#: the second sequence length a model with a dynamic one is verified at (prime: no stride divides it)
SECOND_LENGTH = 13


def _second_length(ref_specs: list, tgt_specs: list, feed: Feed, ir: Model | None,
                   options: CompareOptions) -> Feed | None:  # fmt: skip
    """Inputs at another sequence length, when the model's token inputs (KerasHub's conventions)
    leave the length dynamic in both models: one length proves little about a symbolic dim."""
    from modeltool.feeds import longest_sequence
    from modeltool.keras.hub import SEQUENCE_KINDS, input_meanings

    meanings = input_meanings(ir)
    longest = longest_sequence(ir)
    second = SECOND_LENGTH if longest is None or SECOND_LENGTH < longest else max(1, longest - 3)
    targets = {s.name: s for s in tgt_specs}
    shapes = {}
    for spec in ref_specs:
        meaning, other = meanings.get(spec.name), targets.get(spec.name)
        if meaning is None or meaning.kind not in SEQUENCE_KINDS or spec.name in options.input_shapes:
            continue
        dynamic = [s is not None and s.shape is not None and len(s.shape) > 1 and s.shape[1] is None
                   for s in (spec, other)]  # fmt: skip
        if all(dynamic) and feed[spec.name].shape[1] != second:
            shapes[spec.name] = (feed[spec.name].shape[0], second, *feed[spec.name].shape[2:])
    if not shapes:
        return None
    fixed = {**{k: v.shape for k, v in feed.items()}, **shapes}
    return random_feed(ref_specs, others=tgt_specs, ir=ir, seed=options.seed + 1, batch=options.batch, shapes=fixed)


def verify_files(
    reference: str | os.PathLike, target: str | os.PathLike, options: VerifyOptions | None = None
) -> VerifyReport:
    """Compare any two runnable model files (`modeltool verify A B`). The model options apply to
    whichever file they fit (`--inputs` to a GraphDef, `--reference` to Keras files); the
    tolerance is the documented one of the target's quantization, as the file states it, unless
    `options.quantized` or atol/rtol say otherwise."""
    from modeltool.sources import open_source

    options = options or VerifyOptions()
    if options.html:
        from modeltool.atomic import check_destination

        check_destination(options.html, options.force)
    ref_source = open_source(reference, options)
    tgt_source = open_source(target, options)
    kind = options.quantized or _quantized(tgt_source.ir)
    report = compare_runners(ref_source.reference(), tgt_source.reference(), options,
                             tolerance_for(kind, options.atol, options.rtol), ir=ref_source.ir,
                             localize="always" if options.localize else "never")  # fmt: skip
    if kind and not options.quantized:
        report.warnings.append(f"{target} holds {kind} quantization: compared with its documented tolerance")
    if options.html:
        write_html(report, ref_source.ir, options.html, options.force)
    return report


def write_html(report: VerifyReport, model: Model, path: str, force: bool) -> None:
    """The comparison as a self-contained page: the reference's graph, each layer coloured by its
    error when localized (`modeltool.report`)."""
    from modeltool.report.html import write_report
    from modeltool.report.payload import from_verification

    loc = report.localization
    summary = report.render().splitlines()[:4] + [f"result: {'PASSED' if report.passed else 'FAILED'}"]
    if loc is None:
        summary.append("intermediates not compared: add --localize to colour each layer by its error")
    first = loc.first_divergence.name if loc is not None and loc.first_divergence is not None else None
    payload = from_verification(model, loc.layers if loc is not None else [], summary=summary, first=first)
    write_report(payload, path, force=force)


def _quantized(model: Model) -> str | None:
    from modeltool.quantization import quantization_kind

    kind = quantization_kind(model) if model.metadata.format in (Format.ONNX, Format.TFLITE) else "none"
    return None if kind == "none" else kind
