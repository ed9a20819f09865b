"""`check`: the pre-deployment gate. Each policy rule is measured and reported pass/fail.

Rules on the file itself (interface, size, finite weights, ONNX opsets/ops/checker, TFLite Flex,
custom ops and quantization) read the IR and never import TensorFlow or run model code; parity
with a reference and the latency budget run the model. The report renders as a table, as JSON and
as JUnit XML (one testcase per rule), so CI systems show it natively.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from modeltool.errors import UsageError
from modeltool.formats import Format
from modeltool.ir import Model, TensorSpec, format_shape
from modeltool.options import CompareOptions, VerifyOptions
from modeltool.policy import Policy
from modeltool.quantization import quantization_kind
from modeltool.sizes import MB, format_size


@dataclass
class RuleResult:
    """One rule: `passed` is None when the rule does not apply to this model (skipped)."""

    id: str
    passed: bool | None
    measured: str = ""
    expected: str = ""
    detail: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        status = "skipped" if self.passed is None else ("pass" if self.passed else "fail")
        return {"rule": self.id, "status": status, "measured": self.measured, "expected": self.expected,
                "detail": self.detail, "seconds": round(self.seconds, 4)}  # fmt: skip


@dataclass
class CheckReport:
    model: str
    policy: str | None
    format: str
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for r in self.rules if r.to_dict()["status"] == s) for s in ("pass", "fail", "skipped")}
        return {"passed": self.passed, "model": self.model, "policy": self.policy, "format": self.format,
                "counts": counts, "rules": [r.to_dict() for r in self.rules]}  # fmt: skip

    def render(self) -> str:
        lines = [f"check {self.model} [{self.format}]" + (f" against {self.policy}" if self.policy else "")]
        width = max([len(r.id) for r in self.rules] + [4])
        lines.append(f"{'rule':<{width}}  {'result':<7}  {'measured':<28}  expected")
        lines.append("-" * (width + 60))
        for r in self.rules:
            status = {None: "skip", True: "PASS", False: "FAIL"}[r.passed]
            lines.append(f"{r.id:<{width}}  {status:<7}  {_clip(r.measured, 28):<28}  {r.expected}")
            if r.detail and r.passed is not True:
                lines.append(f"{'':<{width}}           {r.detail}")
        counts = self.to_dict()["counts"]
        lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped: "
                     + ("OK" if self.passed else "FAILED"))  # fmt: skip
        return "\n".join(lines)

    def junit(self) -> str:
        """JUnit XML: one testsuite, one testcase per rule (<failure>, <skipped>)."""
        suite = ET.Element("testsuite", name="modeltool check", tests=str(len(self.rules)),
                           failures=str(sum(1 for r in self.rules if r.passed is False)),
                           skipped=str(sum(1 for r in self.rules if r.passed is None)), errors="0",
                           time=f"{sum(r.seconds for r in self.rules):.4f}")  # fmt: skip
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="model", value=self.model)
        ET.SubElement(props, "property", name="policy", value=self.policy or "")
        for r in self.rules:
            case = ET.SubElement(suite, "testcase", classname=f"modeltool.check.{r.id.split('.')[0]}", name=r.id,
                                 time=f"{r.seconds:.4f}")  # fmt: skip
            text = f"measured: {r.measured}\nexpected: {r.expected}" + (f"\n{r.detail}" if r.detail else "")
            if r.passed is False:
                ET.SubElement(case, "failure", message=f"{r.id}: {r.measured} (expected {r.expected})").text = text
            elif r.passed is None:
                ET.SubElement(case, "skipped", message=r.detail or "not applicable")
            else:
                ET.SubElement(case, "system-out").text = text
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _timed(fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> list[RuleResult]:
        start = time.perf_counter()
        results = fn(*args, **kwargs)
        elapsed = (time.perf_counter() - start) / max(len(results), 1)
        for r in results:
            r.seconds = r.seconds or elapsed
        return results

    return wrapper


# ---------------------------------------------------------------- rules on the file (no TensorFlow)


def boundary(model: Model, signature: str | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs a caller sees: a named signature's, the serving one's, else the graph's."""
    if model.signatures:
        sig = next((s for s in model.signatures if s.name == signature), None) if signature else model.signatures[0]
        if sig is None:
            names = ", ".join(s.name for s in model.signatures)
            raise UsageError(f"{model.path}: no signature {signature!r}; available: {names}")
        return sig.inputs, sig.outputs
    return model.inputs, model.outputs


def _shape_ok(actual: tuple | None, wanted: list) -> bool:
    if actual is None or len(actual) != len(wanted):
        return False
    return all((w is None and a is None) or (w is not None and a == w) for a, w in zip(actual, wanted))


@_timed
def interface_rules(model: Model, policy: Policy) -> list[RuleResult]:
    sec = policy.section("interface")
    out: list[RuleResult] = []
    if not sec:
        return out
    ins, outs = boundary(model, sec.get("signature"))
    for kind, actual in (("inputs", ins), ("outputs", outs)):
        by_name = {t.name: t for t in actual}
        for want in sec.get(kind, []) or []:
            rid = f"interface.{kind}.{want['name']}"
            got = by_name.get(want["name"])
            if got is None:
                out.append(RuleResult(rid, False, "absent", _spec_text(want),
                                      f"{kind}: {', '.join(by_name) or 'none'}"))  # fmt: skip
                continue
            problems = []
            if "dtype" in want and got.dtype != want["dtype"]:
                problems.append(f"dtype {got.dtype} != {want['dtype']}")
            if "shape" in want and not _shape_ok(got.shape, want["shape"]):
                problems.append(f"shape {format_shape(got.shape)} != {format_shape(tuple(want['shape']))}")
            out.append(RuleResult(rid, not problems, f"{got.dtype} {format_shape(got.shape)}", _spec_text(want),
                                  "; ".join(problems)))  # fmt: skip
    if "dynamic_batch" in sec:
        static = [t.name for t in ins if not t.shape or t.shape[0] is not None]
        want = sec["dynamic_batch"]
        measured = "dynamic" if not static else f"static: {', '.join(static)}"
        out.append(RuleResult("interface.dynamic_batch", (not static) == want, measured,
                              "dynamic" if want else "static"))  # fmt: skip
    return out


def _spec_text(want: dict[str, Any]) -> str:
    shape = format_shape(tuple(want["shape"])) if "shape" in want else ""
    return " ".join(x for x in (want.get("dtype", ""), shape) if x) or "present"


@_timed
def size_rules(model: Model, policy: Policy) -> list[RuleResult]:
    sec = policy.section("size")
    out = []
    if "max_file_mb" in sec:
        mb = model.metadata.file_size / MB
        out.append(RuleResult("size.file", mb <= sec["max_file_mb"], format_size(model.metadata.file_size),
                              f"<= {sec['max_file_mb']} MB"))  # fmt: skip
    params = model.params.total
    for key, ok, sign in (("max_params", lambda p, v: p <= v, "<="), ("min_params", lambda p, v: p >= v, ">=")):
        if key in sec:
            passed = params is not None and ok(params, sec[key])
            measured = "unknown" if params is None else f"{params:,}"
            out.append(RuleResult(f"size.params.{key.split('_')[0]}", passed, measured, f"{sign} {sec[key]:,}"))
    return out


@_timed
def weight_rules(model: Model, policy: Policy) -> list[RuleResult]:
    sec = policy.section("weights")
    if not sec.get("finite", True):
        return []
    nan = inf = 0
    bad = []
    for w in model.weights:
        if w.reader is None or np.dtype(w.dtype if w.dtype not in ("bfloat16", "int4") else "uint8").kind != "f":
            continue
        s = w.stats()
        if s.nan or s.inf:
            bad.append(w.name)
        nan, inf = nan + s.nan, inf + s.inf
    detail = f"in {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else "") if bad else ""
    return [RuleResult("weights.finite", not (nan or inf), f"{nan} NaN, {inf} Inf in {len(model.weights)} weights",
                       "no NaN/Inf", detail)]  # fmt: skip


@_timed
def onnx_rules(model: Model, policy: Policy, path: str) -> list[RuleResult]:
    sec = policy.section("onnx")
    is_onnx = model.format == Format.ONNX
    wanted = ["checker"] + [k for k in ("opset", "allowed_ops", "forbidden_ops") if k in sec]
    if not is_onnx:
        if not sec:
            return []
        return [RuleResult(f"onnx.{k}", None, detail=f"not an ONNX model ({model.metadata.format_description})")
                for k in wanted]  # fmt: skip
    out = []
    ops = {n.op for n in model.layers}
    if "opset" in sec:
        version = model.metadata.extra.get("opsets", {}).get("ai.onnx")
        lo, hi = sec["opset"].get("min", 0), sec["opset"].get("max", 10**6)
        out.append(RuleResult("onnx.opset", version is not None and lo <= version <= hi, str(version),
                              f"{lo}..{hi if hi < 10**6 else ''}"))  # fmt: skip
    if "allowed_ops" in sec:
        extra = sorted(ops - set(sec["allowed_ops"]))
        out.append(RuleResult("onnx.allowed_ops", not extra, f"{len(ops)} op types", "only the allowed ops",
                              f"not allowed: {', '.join(extra)}" if extra else ""))  # fmt: skip
    if "forbidden_ops" in sec:
        found = sorted(ops & set(sec["forbidden_ops"]))
        out.append(RuleResult("onnx.forbidden_ops", not found, ", ".join(found) or "none", "none of "
                              + ", ".join(sec["forbidden_ops"])))  # fmt: skip
    if sec.get("checker", True):
        from modeltool.deps import require

        onnx = require("onnx", "checking ONNX models")
        try:
            onnx.checker.check_model(path, full_check=True)
            out.append(RuleResult("onnx.checker", True, "valid", "onnx.checker passes"))
        except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError
            out.append(RuleResult("onnx.checker", False, "invalid", "onnx.checker passes",
                                  " ".join(str(exc).split())[:300]))  # fmt: skip
    return out


@_timed
def tflite_rules(model: Model, policy: Policy) -> list[RuleResult]:
    sec = policy.section("tflite")
    is_tflite = model.format == Format.TFLITE
    keys = ["flex", "custom_ops"] + [k for k in ("quantization", "gpu_delegate") if sec.get(k) not in (None, False)]
    if not is_tflite:
        if not sec:
            return []
        return [RuleResult(f"tflite.{k}", None, detail=f"not a TFLite model ({model.metadata.format_description})")
                for k in keys]  # fmt: skip
    extra = model.metadata.extra
    flex, custom = extra.get("flex_ops") or [], extra.get("custom_ops") or []
    out = [
        RuleResult("tflite.flex", bool(sec.get("allow_flex", False)) or not flex, ", ".join(flex) or "none",
                   "allowed" if sec.get("allow_flex") else "no Select TF (Flex) ops"),
        RuleResult("tflite.custom_ops", bool(sec.get("allow_custom_ops", False)) or not custom,
                   ", ".join(custom) or "none", "allowed" if sec.get("allow_custom_ops") else "no custom ops"),
    ]  # fmt: skip
    if "quantization" in sec:
        kind = quantization_kind(model)
        out.append(RuleResult("tflite.quantization", kind == sec["quantization"], kind, sec["quantization"]))
    if sec.get("gpu_delegate"):
        from modeltool.ops.gpu_delegate import SOURCE, not_taken

        ops = [n.op for n in model.graph.nodes] if model.graph is not None else []
        left = not_taken(ops)
        measured = ", ".join(f"{op} x{n}" for op, n in sorted(left.items())) or "none"
        out.append(RuleResult("tflite.gpu_delegate", not left, measured, "every op taken by LiteRT's GPU delegate",
                              f"ops outside the delegate's parser table ({SOURCE}) run on the CPU"
                              if left else ""))  # fmt: skip
    return out


# ---------------------------------------------------------------- rules that run the model


@_timed
def parity_rules(path: str, policy: Policy, reference: str | None, options: CompareOptions) -> list[RuleResult]:
    from modeltool.verify import verify_files

    sec = policy.section("parity")
    ref = reference or policy.resolve(sec.get("reference"))
    if ref is None:
        return []
    verify_options = VerifyOptions(**{
        **vars(options), "atol": sec.get("atol", options.atol), "rtol": sec.get("rtol", options.rtol),
        "input_data": options.input_data or policy.resolve(sec.get("input")), "seed": sec.get("seed", options.seed),
        "batch": sec.get("batch", options.batch), "signature": sec.get("signature") or options.signature,
    })  # fmt: skip
    report = verify_files(ref, path, verify_options)
    tol = report.tolerance
    out = []
    for o in report.outputs:
        measured = "-" if o.max_abs is None else f"max abs {o.max_abs:.3g}, cos {o.cosine:.6f}"
        out.append(RuleResult(f"parity.{o.name}", o.passed, measured, f"atol {tol.atol:g} rtol {tol.rtol:g}",
                              o.verdict))  # fmt: skip
    for problem in report.problems:
        out.append(RuleResult("parity", False, "not comparable", "outputs comparable", problem))
    for reason in report.inconclusive:  # outputs that agree but prove nothing (modeltool.evidence)
        out.append(RuleResult("parity.evidence", False, "inconclusive", "outputs that carry information", reason))
    return out


@_timed
def latency_rules(path: str, policy: Policy, options: CompareOptions) -> list[RuleResult]:
    sec = policy.section("latency")
    if not sec:
        return []
    from modeltool.feeds import random_feed
    from modeltool.sources import open_runner

    batch, runs, warmup = sec.get("batch", 1), max(sec.get("runs", 50), 1), sec.get("warmup", 5)
    runner = open_runner(path, replace(options, device=sec.get("device", options.device)))
    with runner as r:
        feed = random_feed(r.input_specs(), seed=0, batch=batch)
        for _ in range(warmup):
            r.infer(feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            r.infer(feed)
            times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    p90 = sorted(times)[max(int(len(times) * 0.9) - 1, 0)]
    budget = sec.get("max_median_ms")
    return [RuleResult("latency.median", None if budget is None else median <= budget,
                       f"{median:.3f} ms (p90 {p90:.3f})", f"<= {budget} ms" if budget is not None else "measured",
                       f"{runs} runs at batch {batch}, {r.backend}: {r.provider}")]  # fmt: skip


def check_model(
    path: str,
    policy: Policy,
    options: CompareOptions | None = None,
    *,
    reference: str | None = None,
    policy_path: str | None = None,
) -> CheckReport:
    """Every rule of `policy` (plus the always-on file rules) on the model at `path`; `options` are
    the model options (read, run) and comparison options of the parity rules."""
    from modeltool.loaders import load, source_options

    options = options or CompareOptions()
    model = load(path, **source_options(inputs=options.inputs, outputs=options.outputs, config=options.config,
                                        weights_from=options.weights_from))  # fmt: skip
    report = CheckReport(os.fspath(path), policy_path, model.format.value)
    report.rules += interface_rules(model, policy)
    report.rules += size_rules(model, policy)
    report.rules += weight_rules(model, policy)
    report.rules += onnx_rules(model, policy, os.fspath(path))
    report.rules += tflite_rules(model, policy)
    report.rules += parity_rules(os.fspath(path), policy, reference, options)
    report.rules += latency_rules(os.fspath(path), policy, options)
    return report
