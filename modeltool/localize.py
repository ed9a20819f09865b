"""Where two models part ways: every intermediate tensor of both, paired, compared, and the first
layer whose output leaves the tolerance while everything it reads is still within it.

Both runners expose their intermediates (`Runner.intermediates`: Keras layer outputs, ONNX node
outputs, TFLite tensors, TF op outputs). A reference tensor is paired with the target's by the
layer name inside the target's tensor names (converters keep Keras's name scopes:
`model_1/conv1_1/Conv2D:0`, TFLite's fused `relu1_1/Relu;conv1_1/convolution`), the target's last
such tensor in topological order being the layer's output; what has no name in common is paired
by graph position and shape. A layer whose computation a converter folded into another (a
BatchNormalization into its convolution) has no tensor of its own and is listed as unmatched, never
guessed. Channels-first tensors of an ONNX graph and time-major ones of converted RNN loops are
compared in the reference's layout.

Per pair: max abs, max rel, cosine and SNR in dB. For quantized targets the layers are also ranked
by the error each adds over its inputs (noise-to-signal power, in dB): the layers to keep in float.
A layer whose output a converter fused into a later op (TFLite's conv + BN + activation) has no
tensor that carries all of it; the tensor that still bears its name (a SeparableConv2D's depthwise
half) is never taken for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modeltool.feeds import Feed
from modeltool.metrics import compare_arrays
from modeltool.runners.base import Runner

#: SNR of identical tensors (a finite stand-in for infinity in tables and JSON)
SNR_CAP = 200.0
HISTOGRAM_BINS = 20


@dataclass
class LayerError:
    """One reference intermediate against its counterpart."""

    name: str
    target: str | None
    shape: list[int]
    status: str  # "ok", "diverged", "first", "unmatched"
    max_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    snr_db: float | None = None
    passed: bool | None = None
    #: the noise this layer adds over what it reads, in dB of its signal (higher is worse; quantized
    #: targets: the layers to keep in float)
    contribution_db: float | None = None
    histogram: dict[str, list] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Localization:
    reference: str
    target: str
    layers: list[LayerError] = field(default_factory=list)
    first_divergence: LayerError | None = None
    quantized: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[LayerError]:
        """Matched layers by error contribution, largest first."""
        scored = [e for e in self.layers if e.contribution_db is not None]
        return sorted(scored, key=lambda e: -(e.contribution_db or 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "target": self.target, "quantized": self.quantized,
            "first_divergence": {"layer": self.first_divergence.name, **self.first_divergence.to_dict()}
            if self.first_divergence else None,
            "layers": [e.to_dict() for e in self.layers],
            "ranked_by_contribution": [e.name for e in self.ranked[:20]] if self.quantized else [],
            "notes": list(self.notes),
        }  # fmt: skip

    def render(self) -> str:
        lines = ["localization (every intermediate tensor, in the reference's order):"]
        head = f"  {'layer':<34}{'max abs':>11}{'cosine':>12}{'SNR dB':>9}  result"
        lines += [head, "  " + "-" * (len(head) - 2)]
        for e in self.layers:
            if e.status == "unmatched":
                lines.append(f"  {e.name[:33]:<34}{'-':>11}{'-':>12}{'-':>9}  no counterpart (fused or folded)")
                continue
            mark = {"first": "FIRST DIVERGENCE", "diverged": "diverged", "ok": "ok"}[e.status]
            figures = f"{_num(e.max_abs):>11}{_num(e.cosine, 6):>12}{_num(e.snr_db, 4):>9}"
            lines.append(f"  {e.name[:33]:<34}{figures}  {mark}")
        if self.first_divergence is not None:
            f = self.first_divergence
            lines.append(f"first divergence: {f.name} (target tensor {f.target}; its inputs are within tolerance)")
        else:
            lines.append("first divergence: none (every paired intermediate is within tolerance)")
        if self.quantized and self.ranked:
            top = ", ".join(f"{e.name} ({e.contribution_db:.1f} dB)" for e in self.ranked[:5])
            lines.append(f"largest error added, noise power over each layer's signal (keep in float first): {top}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def localize(
    reference: Runner, target: Runner, feed: Feed, tolerance: Any, *, target_feed: Feed | None = None
) -> Localization:
    """Run both (entered) runners with their intermediates exposed and compare them pairwise."""
    ref = reference.intermediates(feed)
    tgt = target.intermediates(target_feed if target_feed is not None else feed)
    out = Localization(reference.label, target.label, quantized=tolerance.min_cosine is not None)
    pairs = pair(ref, tgt)
    by_name: dict[str, LayerError] = {}
    for (name, value), match in zip(ref, pairs):
        if match is None:
            by_name[name] = LayerError(name, None, list(np.shape(value)), "unmatched")
            continue
        t_name, t_value = match
        a = np.asarray(value, np.float64)
        figures, b = max(((compare_arrays(a, b, tolerance, None), b) for b in _layouts(np.asarray(t_value, np.float64),
                                                                                       a.shape)),
                         key=lambda fb: fb[0]["cosine"])  # fmt: skip
        by_name[name] = LayerError(
            name, t_name, list(a.shape), "ok" if figures["passed"] else "diverged", figures["max_abs"],
            figures["max_rel"], figures["cosine"], snr_db(a, b), bool(figures["passed"]), histogram=_histogram(a - b),
        )  # fmt: skip
    out.layers = [by_name[name] for name, _ in ref]
    inputs = reference.layer_inputs()
    _contributions(out.layers, inputs)
    out.first_divergence = first_divergence(out.layers, inputs)
    if out.first_divergence is not None:
        out.first_divergence.status = "first"
    unmatched = [e.name for e in out.layers if e.status == "unmatched"]
    if unmatched:
        out.notes.append(f"{len(unmatched)} layer(s) have no tensor of their own in {target.label} (fused or "
                         f"folded by the converter): {', '.join(unmatched[:8])}{' ...' if len(unmatched) > 8 else ''}")
    return out


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10 log10(signal power / error power), capped at SNR_CAP for identical tensors."""
    noise = float(np.sum((reference - other) ** 2))
    signal = float(np.sum(reference**2))
    if noise == 0.0 or not math.isfinite(noise):
        return SNR_CAP if noise == 0.0 else -SNR_CAP
    if signal == 0.0:
        return -SNR_CAP
    return max(min(10.0 * math.log10(signal / noise), SNR_CAP), -SNR_CAP)


def _histogram(diff: np.ndarray) -> dict[str, list] | None:
    finite = diff[np.isfinite(diff)].reshape(-1)
    if finite.size == 0:
        return None
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


# ---------------------------------------------------------------- pairing


def pair(ref: list[tuple[str, Any]], tgt: list[tuple[str, Any]]) -> list[tuple[str, Any] | None]:
    """For each reference intermediate, its counterpart in the target (or None): by layer name in the
    target's tensor names (the last such tensor of a fitting shape), then by position and shape."""
    layers = {name for name, _ in ref}
    owner = [_owner(t_name, layers) for t_name, _ in tgt]
    last: dict[str, int] = {}
    for i, (who, (_, value)) in enumerate(zip(owner, tgt)):
        if who is not None:
            last.setdefault(who, -1)
            ref_shape = next(np.shape(v) for n, v in ref if n == who)
            if _fits(np.shape(value), ref_shape):
                last[who] = i
    for who, i in list(last.items()):
        if i >= 0 and _fused_later(who, i, tgt, owner, layers):
            last[who] = -1  # what carries its name is only part of it (a SeparableConv2D's depthwise half)
    result: list[tuple[str, Any] | None] = []
    cursor = -1
    named = any(i >= 0 for i in last.values())
    for name, value in ref:
        i = last.get(name, -1)
        if i < 0 and not named:  # nothing shares a name: follow the graph, matching shapes
            i = next((j for j in range(cursor + 1, len(tgt)) if _fits(np.shape(tgt[j][1]), np.shape(value))), -1)
        if i >= 0:
            cursor = max(cursor, i)
            result.append(tgt[i])
        else:
            result.append(None)
    return result


def _fused_later(layer: str, index: int, tgt: list[tuple[str, Any]], owner: list[str | None],
                 layers: set[str]) -> bool:  # fmt: skip
    """True when a later target tensor, another layer's, names `layer` among the ops fused into it
    (TFLite's `activation/Relu;batch_normalization/...;separable_conv2d/separable_conv2d`): the
    layer's whole output exists only inside that fused op, so the earlier tensor under its name
    carries part of the layer, never all of it."""
    for j in range(index + 1, len(tgt)):
        if owner[j] != layer and layer in _fused_owners(tgt[j][0], layers):
            return True
    return False


def _fused_owners(tensor: str, layers: set[str]) -> set[str]:
    """The layers named by the second and later parts of a fused TFLite tensor name."""
    out = set()
    for alternative in tensor.split(";")[1:]:
        found = _owner(alternative, layers)
        if found is not None:
            out.add(found)
    return out


def _owner(tensor: str, layers: set[str]) -> str | None:
    """The reference layer a target tensor belongs to, from its name scopes: the deepest scope path
    that names a layer (Keras 3 traces add `_N` to every scope: `conv1_1` is layer `conv1`)."""
    for alternative in tensor.split(";")[:1]:  # TFLite fused ops: the first name is the op's own
        tokens = alternative.split(":")[0].split("/")
        for start in range(len(tokens)):
            for end in range(len(tokens), start, -1):
                path = _layer_path(tokens[start:end], layers)
                if path is not None:
                    return path
    return None


def _layer_path(tokens: list[str], layers: set[str]) -> str | None:
    names = [(token, re.sub(r"_\d+$", "", token)) for token in tokens]
    for choice in _combinations(names):
        path = "/".join(choice)
        if path in layers:
            return path
    return None


def _combinations(names: list[tuple[str, str]]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for exact, stripped in names:
        alternatives = [exact] if stripped == exact else [exact, stripped]
        out = [prefix + [name] for name in alternatives for prefix in out]
        if len(out) > 64:
            out = out[:64]
    return out


def _fits(shape: tuple, ref_shape: tuple) -> bool:
    return any(tuple(s) == tuple(ref_shape) for s in _readings(tuple(shape)))


def _readings(shape: tuple) -> list[tuple]:
    """The shapes a tensor may be read as in the reference's layout: as it is; channels-first read
    channels-last (ONNX convolutions); time-major read batch-major (converted RNN loops)."""
    out = [shape]
    if len(shape) in (3, 4, 5):
        out.append((shape[0], *shape[2:], shape[1]))
    if len(shape) == 3:
        out.append((shape[1], shape[0], shape[2]))
    return out


def _layouts(value: np.ndarray, ref_shape: tuple) -> list[np.ndarray]:
    """`value` in every reading (`_readings`) that has the reference's shape; a shape that fits
    several ways (square ones) gives each, and the caller keeps the closest."""
    out = [value] if value.shape == tuple(ref_shape) else []
    if value.ndim in (3, 4, 5) and np.moveaxis(value, 1, -1).shape == tuple(ref_shape):
        out.append(np.moveaxis(value, 1, -1))
    if value.ndim == 3 and np.swapaxes(value, 0, 1).shape == tuple(ref_shape):
        out.append(np.swapaxes(value, 0, 1))
    return out or [value]


# ---------------------------------------------------------------- verdicts


def first_divergence(layers: list[LayerError], inputs: dict[str, list[str]]) -> LayerError | None:
    """The first layer (reference order) that fails while every layer it reads passes; a layer with
    no counterpart is looked through to what it reads."""
    status = {e.name: e for e in layers}

    def inputs_ok(name: str, seen: set[str]) -> bool:
        for src in inputs.get(name, []):
            if src in seen:
                continue
            seen.add(src)
            e = status.get(src)
            if e is None:
                continue
            if e.status == "unmatched":
                if not inputs_ok(src, seen):
                    return False
            elif not e.passed:
                return False
        return True

    for e in layers:
        if e.status == "diverged" and inputs_ok(e.name, set()):
            return e
    return next((e for e in layers if e.status == "diverged"), None)


def noise_ratio(snr: float) -> float:
    """Noise-to-signal power ratio of an SNR in dB (0 for identical tensors, whatever the cap)."""
    return 0.0 if snr >= SNR_CAP else 10.0 ** (-snr / 10.0)


def _contributions(layers: list[LayerError], inputs: dict[str, list[str]]) -> None:
    """The error each matched layer adds: its own noise-to-signal power ratio less the worst it
    reads (graph inputs are exact), as dB (`contribution_db`, higher is worse; None when it adds
    none). A ratio, not a difference of SNRs: the first quantized layer after exact inputs would
    otherwise rank by the cap given to identical tensors."""
    ratio = {e.name: noise_ratio(e.snr_db) for e in layers if e.snr_db is not None}

    def incoming(name: str, seen: set[str]) -> float:
        values = []
        for src in inputs.get(name, []):
            if src in seen:
                continue
            seen.add(src)
            values.append(ratio[src] if src in ratio else incoming(src, seen))
        return max(values) if values else 0.0

    for e in layers:
        if e.snr_db is not None:
            added = ratio[e.name] - incoming(e.name, set())
            e.contribution_db = 10.0 * math.log10(added) if added > 0 else None
