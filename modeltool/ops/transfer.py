"""`transfer-weights`: trained weights into a new or changed architecture, by layer name.

Keras's `load_weights(by_name=True, skip_mismatch=True)` is the model here, with what it lacks:
nested models matched by path, Keras 3 `.weights.h5` files matched by the names recovered from the
architecture (Keras 3's own `load_weights` matches by attribute path, so a reordered model gets the
wrong weights or fails), renamed layers mapped with `--map OLD=NEW` (regular expressions), and a
report per layer. Everything runs on the IR: SRC and DST are read by modeltool's loaders and OUT
is written by `keras.writer`, so no TensorFlow is imported for H5/.keras/config files.

Within a layer, weights are matched by role and occurrence (the second `kernel` of a Bidirectional
layer is the backward one), so Keras 1/2/3 naming differences do not matter. A layer is transferred
whole or not at all, like Keras's `skip_mismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.atomic import atomic_path, check_destination
from modeltool.errors import UnsupportedError, UsageError
from modeltool.ir import Graph, Model, Weight
from modeltool.keras.writer import Placement
from modeltool.ops.renames import parse_maps, renamed

OUT_KINDS = {".weights.h5": "weights.h5", ".keras": "keras", ".h5": "h5", ".hdf5": "h5"}
STATUSES = ("transferred", "shape-mismatch", "missing-in-source", "missing-in-target")


@dataclass
class LayerRow:
    layer: str
    status: str
    source: str | None = None
    weights: int = 0
    params: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("layer", "status", "source", "weights", "params", "detail")}


#: below this share of DST's parameters filled from SRC, a transfer warns loudly
LOW_FRACTION = 0.5


@dataclass
class TransferReport:
    source: str
    target: str
    output: str | None
    rows: list[LayerRow] = field(default_factory=list)
    initialized: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: bool = False
    strict: bool = False
    allow_empty: bool = False

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status in STATUSES:
            rows = [r for r in self.rows if r.status == status]
            out[status] = {"layers": len(rows), "weights": sum(r.weights for r in rows),
                           "params": sum(r.params for r in rows)}  # fmt: skip
        return out

    @property
    def complete(self) -> bool:
        """Every weight of the target came from the source, and every source weight was used."""
        return all(r.status == "transferred" for r in self.rows)

    @property
    def transferred_params(self) -> tuple[int, int]:
        """(params transferred, params of the target's layers): the share of DST that SRC filled."""
        done = sum(r.params for r in self.rows if r.status == "transferred")
        target = sum(r.params for r in self.rows if r.status != "missing-in-target")
        return done, target

    @property
    def empty(self) -> bool:
        """Nothing was transferred: OUT would be DST's own (or freshly initialized) weights."""
        return not any(r.status == "transferred" for r in self.rows)

    @property
    def passed(self) -> bool:
        if self.empty and not self.allow_empty:
            return False
        return self.complete or not self.strict

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "written": self.written, "source": self.source, "target": self.target,
            "output": self.output, "layers": [r.to_dict() for r in self.rows], "totals": self.totals(),
            "initialized": list(self.initialized), "warnings": list(self.warnings), "empty": self.empty,
            "transferred_fraction": self._fraction(),
        }  # fmt: skip

    def _fraction(self) -> float:
        done, target = self.transferred_params
        return round(done / target, 4) if target else 0.0

    def render(self) -> str:
        lines = [f"{self.source} -> {self.target}" + (f" -> {self.output}" if self.output else " (dry run)")]
        width = max([len(r.layer) for r in self.rows] + [5])
        lines.append(f"{'layer':<{width}}  {'status':<17}  {'weights':>7}  {'params':>9}  detail")
        lines.append("-" * (width + 50))
        for r in self.rows:
            detail = r.detail or (f"from {r.source}" if r.source and r.source != r.layer else "")
            lines.append(f"{r.layer:<{width}}  {r.status:<17}  {r.weights:>7}  {r.params:>9,}  {detail}")
        for status, t in self.totals().items():
            if t["layers"]:
                lines.append(f"{status}: {t['layers']} layers, {t['weights']} weights, {t['params']:,} params")
        if self.initialized:
            lines.append(f"initialized fresh (numpy, from the layer's initializer): {', '.join(self.initialized)}")
        lines += [f"warning: {w}" for w in self.warnings]
        if self.empty and not self.allow_empty:
            lines.append("FAILED: no weight was transferred (layer names or shapes match nothing; see --map); "
                         "--allow-empty writes OUT anyway")  # fmt: skip
        elif not self.passed:
            lines.append("strict: some weights were not transferred")
        if self.output and not self.written:
            lines.append(f"nothing written to {self.output}")
        return "\n".join(lines)


def out_kind(path: str) -> str:
    lower = path.lower()
    for suffix, kind in OUT_KINDS.items():
        if lower.endswith(suffix):
            return kind
    raise UsageError(f"{path}: OUT must be .keras, .h5 or .weights.h5 (Keras 3 loads each of them)")


def _keyed(weights: list[Weight]) -> dict[str, list[Weight]]:
    by_layer: dict[str, list[Weight]] = {}
    for w in weights:
        by_layer.setdefault(w.layer or w.name.rsplit("/", 1)[0], []).append(w)
    return by_layer


def _role_keys(items: list[Any], role_of: Any) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    keys = []
    for item in items:
        role = role_of(item)
        keys.append((role, seen.get(role, 0)))
        seen[role] = seen.get(role, 0) + 1
    return keys


@dataclass
class _Slot:
    """One weight of the target architecture, in Keras 3 creation order."""

    layer: str
    role: str
    shape: tuple
    k3_sub: str
    k3_index: int
    trainable: bool
    prefix: str
    config: dict[str, Any]
    op: str = ""


def target_slots(graph: Graph, stored: dict[str, list[Weight]]) -> dict[str, list[_Slot]]:
    """{layer path: its weights} from the layer specs (shapes from the stored weights when present)."""
    out: dict[str, list[_Slot]] = {}
    for path, node in graph.walk():
        if node.subgraph is not None:
            continue
        specs = node.attrs.get("weight_specs") or []
        have = stored.get(path, [])
        trainable_layer = not (isinstance(node.config, dict) and node.config.get("trainable") is False)
        if specs:
            slots = []
            for i, spec in enumerate(specs):
                shape = tuple(have[i].shape) if i < len(have) else tuple(spec.shape)
                slots.append(_Slot(path, spec.role, shape, spec.k3[0], spec.k3[1], spec.trainable and trainable_layer,
                                   spec.prefix, node.config, node.op))  # fmt: skip
            out[path] = slots
        elif have:  # a custom layer: its own variables, in the stored order
            out[path] = [_Slot(path, w.role, tuple(w.shape), "", i, w.trainable, "", node.config)
                         for i, w in enumerate(have)]  # fmt: skip
        elif node.params is None:
            raise UnsupportedError(
                f"target layer {path!r} ({node.op}) is a custom layer without stored weights: modeltool cannot "
                "tell what weights it creates; give DST as an .h5/.keras file that holds them"
            )
    if any(None in s.shape for slots in out.values() for s in slots):
        unknown = [p for p, slots in out.items() if any(None in s.shape for s in slots)]
        raise UnsupportedError(f"target weight shapes unknown for {', '.join(unknown[:5])} (input shape not in DST)")
    return out


def transfer_weights(
    src: str,
    dst: str,
    out: str | None,
    *,
    maps: list[str] | tuple[str, ...] = (),
    strict: bool = False,
    dry_run: bool = False,
    force: bool = False,
    src_config: str | None = None,
    src_weights: str | None = None,
    seed: int = 0,
    allow_empty: bool = False,
) -> TransferReport:
    """Match SRC's weights to DST's layers, report, and (unless `dry_run`) write OUT. A transfer that
    moves no weight at all fails (nothing written) unless `allow_empty`: OUT would silently be DST's
    own or freshly initialized weights; one that fills under `LOW_FRACTION` of DST warns."""
    from modeltool.keras.graph import build_graph
    from modeltool.keras.rebuild import keras3_config
    from modeltool.keras.semantics import preserve_writer_semantics, writer_generation
    from modeltool.loaders import load, source_options

    if not dry_run:
        if out is None:
            raise UsageError("-o OUT is needed (or --dry-run)")
        kind = out_kind(out)
        check_destination(out, force)
    source = load(src, **source_options(config=src_config, weights_from=src_weights))
    target = load(dst)
    if not source.weights:
        raise UsageError(f"{src}: holds no weights to transfer ({source.metadata.format_description})")
    if target.config is None or target.graph is None:
        raise UsageError(f"{dst}: holds no Keras architecture to transfer into ({target.metadata.format_description})")
    keras3 = target.metadata.writer.get("keras_version", "").startswith("3")
    config = target.config if keras3 else keras3_config(target.config)
    kept = [] if keras3 else preserve_writer_semantics(config, writer_generation(target))
    graph = build_graph(config) if not keras3 else target.graph
    report = TransferReport(src, dst, None if dry_run else out, strict=strict, allow_empty=allow_empty)
    if kept:
        report.warnings.append(f"Keras {writer_generation(target)} semantics kept in OUT: {'; '.join(kept)} "
                               "(load OUT with custom_objects=modeltool.keras.semantics.legacy_objects())")  # fmt: skip
    placements = _match(source, target, graph, parse_maps(maps), report, np.random.default_rng(seed))
    done, total = report.transferred_params
    if done and total and done < LOW_FRACTION * total:
        report.warnings.insert(0, f"only {done:,} of {total:,} parameters ({done / total:.0%}) of {dst} came from "
                                  f"{src}; the rest keep DST's values or are initialized fresh (check the layer "
                                  "names, or rename with --map)")  # fmt: skip
    if dry_run or not report.passed:
        return report
    unset = [f"{p.layer}/{p.role}" for p in placements if p.value is None]
    if unset:
        raise UnsupportedError(f"{dst}: no value for {', '.join(unset[:5])}: " + report.warnings[0].split(": ", 1)[-1])
    from modeltool.keras import writer

    with atomic_path(out, force=force) as tmp:
        if kind == "weights.h5":
            writer.write_weights_h5(tmp, graph, placements, str((config.get("config") or {}).get("name", "model")))
        elif kind == "keras":
            writer.write_keras(tmp, config, graph, placements)
        else:
            writer.write_legacy_h5(tmp, config, graph, placements)
    report.written = True
    return report


def _match(
    source: Model, target: Model, graph: Graph, maps: list, report: TransferReport, rng: np.random.Generator
) -> list[Placement]:
    src_layers = _keyed(source.weights)
    by_mapped: dict[str, str] = {}
    for path in src_layers:
        by_mapped.setdefault(renamed(path, maps), path)
    leaves: dict[str, list[str]] = {}
    for path in by_mapped:
        leaves.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    slots = target_slots(graph, _keyed(target.weights))
    dst_leaves: dict[str, int] = {}
    for path in slots:
        leaf = path.rsplit("/", 1)[-1]
        dst_leaves[leaf] = dst_leaves.get(leaf, 0) + 1
    stored = _keyed(target.weights)
    used: set[str] = set()
    placements: list[Placement] = []
    for path, layer_slots in slots.items():
        leaf = path.rsplit("/", 1)[-1]
        mapped = path if path in by_mapped else None
        if mapped is None and len(leaves.get(leaf, [])) == 1 and dst_leaves.get(leaf) == 1:
            mapped = leaves[leaf][0]  # a flat model's layer into a nested one (or back), by unique name
        src_path = by_mapped.get(mapped) if mapped else None
        values, row = _layer(path, layer_slots, src_layers.get(src_path) if src_path else None, src_path)
        if src_path is not None:
            used.add(src_path)
        report.rows.append(row)
        for i, slot in enumerate(layer_slots):
            value = values[i] if values is not None else _kept(stored.get(path, []), i, slot)
            if value is None:
                try:
                    value = _fresh(slot, rng)
                    report.initialized.append(f"{path}/{slot.role}")
                except UnsupportedError as exc:
                    report.warnings.append(f"{path}/{slot.role}: {exc}")  # fatal only if OUT is written
            elif values is None and i == 0:
                row.detail += "; the target's own weights kept"
            placements.append(Placement(path, slot.role, value, slot.k3_sub, slot.k3_index, slot.trainable,
                                        slot.prefix))  # fmt: skip
    for path, weights in src_layers.items():
        if path not in used:
            size = sum(w.size for w in weights)
            detail = "no layer of this name in the target"
            report.rows.append(LayerRow(renamed(path, maps), "missing-in-target", path, len(weights), size, detail))
    return placements


def _layer(
    path: str, slots: list[_Slot], weights: list[Weight] | None, src_path: str | None
) -> tuple[list[np.ndarray] | None, LayerRow]:
    n_params = sum(int(np.prod(s.shape)) for s in slots)
    if weights is None:
        detail = "no layer of this name in the source"
        return None, LayerRow(path, "missing-in-source", None, len(slots), n_params, detail)
    want = dict(zip(_role_keys(slots, lambda s: s.role), slots))
    have = dict(zip(_role_keys(weights, lambda w: w.role), weights))
    converted = _legacy_layout(slots, weights, path)
    if converted is not None:
        return converted, LayerRow(path, "transferred", src_path, len(slots), n_params,
                                   f"converted from {len(weights)} legacy arrays")  # fmt: skip
    if set(want) != set(have) and [tuple(w.shape) for w in weights] == [tuple(s.shape) for s in slots]:
        # same arrays under other role names (a weights-only file's guessed roles): by position
        values = [np.asarray(w.value()) for w in weights]
        return values, LayerRow(path, "transferred", src_path, len(slots), n_params, "matched by position")
    if set(want) != set(have):
        detail = f"weights differ: source {sorted(r for r, _ in have)} vs target {sorted(r for r, _ in want)}"
        return None, LayerRow(path, "shape-mismatch", src_path, len(slots), n_params, detail)
    bad = [(k, tuple(have[k].shape), tuple(w.shape)) for k, w in want.items() if tuple(have[k].shape) != tuple(w.shape)]
    if bad:
        detail = "; ".join(f"{role}: {s} vs {d}" for (role, _), s, d in bad)
        return None, LayerRow(path, "shape-mismatch", src_path, len(slots), n_params, f"src vs dst {detail}")
    values = [np.asarray(have[k].value()) for k in _role_keys(slots, lambda s: s.role)]
    return values, LayerRow(path, "transferred", src_path, len(slots), n_params)


def _legacy_layout(slots: list[_Slot], weights: list[Weight], path: str) -> list[np.ndarray] | None:
    """A weights-only source (no architecture of its own, so its loader could not convert them) in a
    Keras 1 per-gate RNN, 4-D Conv1D, Theano or CuDNN layout, converted to the target layer's Keras 3
    shapes; None when not applicable."""
    from modeltool.errors import LoadError
    from modeltool.keras.legacy_arrays import convert_layer_arrays

    shapes = [tuple(s.shape) for s in slots]
    stored = [tuple(w.shape) for w in weights]
    if stored == shapes or not slots:
        return None
    from modeltool.keras.legacy_arrays import wrapped_class

    cls = slots[0].op.rsplit(">", 1)[-1] or "Layer"
    try:
        return convert_layer_arrays(cls, [np.asarray(w.value()) for w in weights], shapes, path, "source",
                                    cell=wrapped_class(slots[0].config))  # fmt: skip
    except LoadError:
        return None


def _kept(stored: list[Weight], i: int, slot: _Slot) -> np.ndarray | None:
    """The target's own stored value of a slot, when DST holds weights of that shape."""
    if i < len(stored) and tuple(stored[i].shape) == tuple(slot.shape):
        return np.asarray(stored[i].value())
    return None


def _fresh(slot: _Slot, rng: np.random.Generator) -> np.ndarray:
    from modeltool.keras.initializers import fresh

    return fresh(slot.config if isinstance(slot.config, dict) else {}, slot.role, slot.shape, rng)

