"""What a visual report shows, as one JSON-able dict: the only thing the HTML renderer reads.

    {"title": str, "kind": "inspect" | "diff" | "verify", "summary": [str, ...],
     "graphs": [{"id": str, "title": str, "edges": [[source_id, target_id], ...],
                 "nodes": [{"id", "label", "type", "parent" (id of the enclosing group or None),
                            "group" (collapsible), "shape", "params", "status", "metrics" (shown on
                            click), "histogram" ({"edges", "counts"} or None), "details"}]}]}

Every command builds its report through here (`from_model`, `from_diff`, `from_verification`), so
the page never learns about formats: a status and some figures per node is all it draws. Built from
the IR alone: no TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from modeltool.ir import Model, format_shape
from modeltool.report.graph import graph_payload
from modeltool.sizes import format_size

if TYPE_CHECKING:
    from modeltool.ops.diff import DiffReport

KINDS = ("inspect", "diff", "verify")
STATUSES = (None, "ok", "diverged", "first", "unmatched", "added", "removed", "changed")
#: the localization figures a verify node shows, in this order
VERIFY_METRICS = ("max_abs", "max_rel", "cosine", "snr_db", "contribution_db")


def from_model(model: Model, *, title: str | None = None) -> dict[str, Any]:
    """`inspect --html`: the model's graph with each layer's (op's) output shape and parameters."""
    return {"title": title or f"{os.path.basename(model.path)}: {model.metadata.format_description}",
            "kind": "inspect", "summary": model_summary(model), "graphs": model_graphs(model, "model")}  # fmt: skip


def model_graphs(model: Model, graph_id: str, title: str | None = None) -> list[dict[str, Any]]:
    """The model's one graph as a payload graph (none for a weights-only file)."""
    if model.graph is None or not model.graph.nodes:
        return []
    what = "ops" if model.graph.level == "op" else "layers"
    return [graph_payload(model.graph, graph_id, title or f"{os.path.basename(model.path)} ({what})")]


def model_summary(model: Model) -> list[str]:
    """The few lines `inspect` starts with: format, writer, size, inputs, outputs, parameters."""
    meta = model.metadata
    lines = [f"{model.path}: {meta.format_description}, {format_size(meta.file_size)}"]
    writer = ", ".join(f"{k} {v}" for k, v in meta.writer.items() if v)
    if writer:
        lines.append(f"written by {writer}")
    for label, specs in (("inputs", model.inputs), ("outputs", model.outputs)):
        if specs:
            lines.append(f"{label}: " + ", ".join(f"{t.name} {format_shape(t.shape)} {t.dtype or '?'}" for t in specs))
    p = model.params
    total = "unknown" if p.total is None else f"{p.total:,}"
    trainable = "" if p.trainable is None else f" ({p.trainable:,} trainable)"
    count = len(list(model.graph.walk())) if model.graph is not None else 0
    what = "ops" if model.graph is not None and model.graph.level == "op" else "layers"
    lines.append(f"{count:,} {what}, {total} parameters{trainable}")
    if model.graph is None:
        lines.append("no architecture in this file: nothing to draw")
    lines += [f"warning: {w}" for w in model.warnings]
    return lines


# ---------------------------------------------------------------- diff


def from_diff(report: DiffReport, model_a: Model, model_b: Model) -> dict[str, Any]:
    """`diff --html`: one graph, B's, with the layers A had and B lost drawn in place (A's edges), so
    a change reads in its context as in a text diff; added, removed and changed layers marked.
    When the architectures were not compared (a layer-level file against an op-level one, a
    weights-only file), both graphs are drawn, A's weights without a counterpart marked."""
    a, b = os.path.basename(model_a.path), os.path.basename(model_b.path)
    summary = [f"A: {report.a}", f"B: {report.b}", *[f"note: {n}" for n in report.notes],
               report.render().splitlines()[-1]]  # fmt: skip
    payload = {"title": f"diff {a} -> {b}", "kind": "diff", "summary": summary, "graphs": []}
    if report.architecture_compared and model_a.graph is not None and model_b.graph is not None:
        payload["graphs"] = [_merged(report, model_a, model_b, f"{b} with what {a} had and {b} lost")]
        return payload
    graphs_a = model_graphs(model_a, "a", f"A: {a}")
    for graph in graphs_a:
        nodes = {n["id"]: n for n in graph["nodes"]}
        for item in report.weights:
            _mark_weight(nodes, item)
    payload["graphs"] = graphs_a + model_graphs(model_b, "b", f"B: {b}")
    return payload


def _merged(report: DiffReport, model_a: Model, model_b: Model, title: str) -> dict[str, Any]:
    graph = graph_payload(model_b.graph, "diff", title)  # type: ignore[arg-type]
    nodes_b = {n["id"]: n for n in graph["nodes"]}
    for item in report.layers:
        node = nodes_b.get(item["layer"])
        if node is None or item["change"] == "removed":
            continue
        node["status"] = "added" if item["change"] == "added" else "changed"
        node["details"].update(_change_details(item))
    graph_a = graph_payload(model_a.graph, "a", "")  # type: ignore[arg-type]
    removed = {item["layer"] for item in report.layers if item["change"] == "removed"}
    renames = {item["from"]: item["layer"] for item in report.layers if item.get("from")}
    used = set(nodes_b)
    to_merged: dict[str, str] = {}
    for n in graph_a["nodes"]:
        if n["id"] in removed:
            mid = n["id"]
            while mid in used:
                mid += " (A)"
            used.add(mid)
            to_merged[n["id"]] = mid
        elif renames.get(n["id"], n["id"]) in nodes_b:
            to_merged[n["id"]] = renames.get(n["id"], n["id"])
    by_id_a = {n["id"]: n for n in graph_a["nodes"]}
    after: dict[str | None, list[dict[str, Any]]] = {}
    last: str | None = None
    for n in graph_a["nodes"]:
        if n["id"] in removed:
            parent = n["parent"]
            while parent is not None and parent not in to_merged:
                parent = by_id_a[parent]["parent"]
            entry = {**n, "id": to_merged[n["id"]], "status": "removed", "details": dict(n["details"]),
                     "parent": to_merged[parent] if parent is not None else None}  # fmt: skip
            after.setdefault(last, []).append(entry)
        elif n["id"] in to_merged:
            last = to_merged[n["id"]]
    nodes = list(after.get(None, []))
    for n in graph["nodes"]:
        nodes.append(n)
        nodes.extend(after.get(n["id"], []))
    merged = {n["id"]: n for n in nodes}
    for item in report.weights:
        _mark_weight(merged, item, to_merged)
    edges = graph["edges"] + [[to_merged[x], to_merged[y]] for x, y in graph_a["edges"]
                              if (x in removed or y in removed) and x in to_merged and y in to_merged]  # fmt: skip
    return {**graph, "nodes": nodes, "edges": edges}


def _change_details(item: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    if item.get("from"):
        out["renamed from"] = str(item["from"])
    if item.get("class_a") and item.get("class_b") and item["class_a"] != item["class_b"]:
        out["changed class"] = f"{item['class_a']} -> {item['class_b']}"
    for key, (va, vb) in (item.get("keys") or {}).items():
        out[f"changed {key}"] = f"{_short(va)} -> {_short(vb)}"
    return out


def _mark_weight(nodes: dict[str, dict[str, Any]], item: Mapping[str, Any],
                 aliases: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """A weight change marks its layer changed (a layer whose config is equal but whose kernel is not
    still computes something else) and says what changed."""
    layer, _, role = str(item["weight"]).rpartition("/")
    node = nodes.get(layer) or nodes.get((aliases or {}).get(layer, ""))
    if node is None:
        return
    change = item["change"]
    if change == "values":
        text = f"values differ, max abs delta {item['max_abs']:.6g}"
    elif change == "shape":
        text = f"shape {tuple(item['shape_a'])} -> {tuple(item['shape_b'])}"
    elif change == "no counterpart":
        text = f"{tuple(item['shape'])}: no weight of the same values in B"
    else:
        text = f"{change} {tuple(item.get('shape') or ())}"
    node["details"][f"weight {role}"] = text
    if node["status"] is None:
        node["status"] = "changed"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- verify


def from_verification(model: Model, layers: Iterable[Any], *, summary: Iterable[str] = (), first: str | None = None,
                      title: str | None = None) -> dict[str, Any]:  # fmt: skip
    """`verify --localize --html`: the reference model's graph, each compared layer coloured by its
    error, with its figures and the histogram of its differences. `layers` are the localization's
    records (dicts or objects with `to_dict()`: name, status, max_abs, max_rel, cosine, snr_db,
    passed, histogram); `first` names the first divergence when the records do not say."""
    records = [_record(r) for r in layers]
    graphs = [verification_nodes(g, records, first=first) for g in model_graphs(model, "reference")]
    drawn = {n["id"] for g in graphs for n in g["nodes"] if n["status"] is not None}
    lines = list(summary)
    index = _Index(graphs[0]["nodes"] if graphs else [])
    missing = [r["name"] for r in records if index.find(r["name"]) is None]
    if missing:
        lines.append(f"{len(missing)} compared tensor(s) match no drawn node: {', '.join(missing[:6])}"
                     + (" ..." if len(missing) > 6 else ""))  # fmt: skip
    lines.append(f"{len(drawn)} node(s) coloured by their error")
    return {"title": title or f"verify {os.path.basename(model.path)}", "kind": "verify", "summary": lines,
            "graphs": graphs}  # fmt: skip


def verification_nodes(graph: dict[str, Any], layers: Iterable[Any], *, first: str | None = None) -> dict[str, Any]:
    """A copy of a payload graph with the localization's figures on the nodes they belong to (by node
    id, then by unique label, then without a `:k` tensor suffix); nodes not compared keep status None."""
    nodes = [{**n, "metrics": dict(n["metrics"]), "details": dict(n["details"])} for n in graph["nodes"]]
    index = _Index(nodes)
    for record in map(_record, layers):
        node = index.find(record["name"])
        if node is None:
            continue
        status = record.get("status")
        if status not in STATUSES or status is None:
            passed = record.get("passed")
            status = "unmatched" if passed is None else "ok" if passed else "diverged"
        if first is not None and record["name"] == first:
            status = "first"
        node["status"] = status
        for key in VERIFY_METRICS:
            value = record.get(key)
            if value is not None:
                node["metrics"][key] = float(value)
        if record.get("passed") is not None:
            node["metrics"]["passed"] = "yes" if record["passed"] else "no"
        if record.get("target"):
            node["details"]["target tensor"] = str(record["target"])
        if status == "unmatched":
            node["details"]["comparison"] = "no counterpart in the target (fused or folded by the converter)"
        hist = record.get("histogram")
        if hist:
            node["histogram"] = {"edges": [float(e) for e in hist["edges"]], "counts": [int(c) for c in hist["counts"]]}
    return {**graph, "nodes": nodes}


def _record(record: Any) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    raise TypeError(f"a localization record is a mapping or has to_dict(), not {type(record).__name__}")


class _Index:
    """Nodes by id and by unique label: where a compared tensor's name is drawn."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.by_id = {n["id"]: n for n in nodes}
        labels: dict[str, list[dict[str, Any]]] = {}
        for n in nodes:
            labels.setdefault(n["label"], []).append(n)
        self.by_label = {}
        for label, found in labels.items():
            leaves = [n for n in found if not n["group"]] or found
            if len(leaves) == 1:
                self.by_label[label] = leaves[0]

    def find(self, name: str) -> dict[str, Any] | None:
        base, sep, index = name.rpartition(":")
        names = [name, base] if sep and index.isdigit() else [name]
        for table in (self.by_id, self.by_label):
            for key in names:
                if key in table:
                    return table[key]
        return None


# ---------------------------------------------------------------- contract


def check_payload(payload: Mapping[str, Any]) -> None:
    """ValueError naming the first place where `payload` breaks the contract above (what the page
    can draw): unknown kind or status, a parent that is no group, an edge to no node."""

    def fail(where: str, what: str) -> None:
        raise ValueError(f"report payload {where}: {what}")

    if payload.get("kind") not in KINDS:
        fail("kind", f"{payload.get('kind')!r} is not one of {', '.join(KINDS)}")
    if not isinstance(payload.get("title"), str):
        fail("title", "must be a string")
    if not all(isinstance(s, str) for s in payload.get("summary", [None])):
        fail("summary", "must be a list of strings")
    for g in payload.get("graphs", []):
        where = f"graph {g.get('id')!r}"
        ids = [n.get("id") for n in g["nodes"]]
        if len(set(ids)) != len(ids):
            fail(where, "node ids are not unique")
        groups = {n["id"] for n in g["nodes"] if n.get("group")}
        for n in g["nodes"]:
            missing = {"id", "label", "type", "parent", "group", "shape", "params", "status", "metrics", "histogram",
                       "details"} - set(n)  # fmt: skip
            if missing:
                fail(f"{where} node {n.get('id')!r}", f"lacks {', '.join(sorted(missing))}")
            if n["status"] not in STATUSES:
                fail(f"{where} node {n['id']!r}", f"status {n['status']!r} is not one of {STATUSES}")
            if n["parent"] is not None and n["parent"] not in groups:
                fail(f"{where} node {n['id']!r}", f"parent {n['parent']!r} is not a group node")
            hist = n["histogram"]
            if hist is not None and len(hist["edges"]) != len(hist["counts"]) + 1:
                fail(f"{where} node {n['id']!r}", "histogram needs one more edge than counts")
        known = set(ids)
        for edge in g["edges"]:
            if len(edge) != 2 or edge[0] not in known or edge[1] not in known:
                fail(where, f"edge {edge!r} joins unknown nodes")
