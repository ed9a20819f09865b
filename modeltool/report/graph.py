"""One IR graph as the nodes and edges of a drawing.

Keras files give layers, and a nested model becomes a group whose layers are drawn inside it when it
is expanded: the edges run from layer to layer (into the nested model's input layer, out of its
output layer), so a collapsed group simply gathers them. ONNX, TFLite and TF graphs give ops, by the
thousand for an unrolled RNN: they are grouped by their TF name scopes (`rnn/while/...`), the way
TensorBoard does, so the first view shows a few scopes instead of every op. A scope holding a
single op is no group, and a scope whose only content is one other scope is merged into it
(`cell_0/cell_0/basic_lstm_cell` is one click, not three).
"""

from __future__ import annotations

from typing import Any

from modeltool.ir import Graph, Node, display_config, format_shape

#: config keys never shown on a node: the nested model's own layers are drawn, not listed
HIDDEN_KEYS = {"name", "layers", "input_layers", "output_layers", "outputs", "domain"}
#: how many config entries and characters a node's details keep (the page stays small on 7,000 ops)
DETAIL_KEYS, DETAIL_CHARS = 24, 160


def graph_payload(graph: Graph, graph_id: str, title: str) -> dict[str, Any]:
    """The payload's entry for one graph: `{"id", "title", "nodes", "edges"}`."""
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    if graph.level == "op":
        _op_level(graph, nodes, edges)
    else:
        _Layers(nodes, edges).add(graph, "", None)
    seen: set[tuple[str, str]] = set()
    unique = []
    for a, b in edges:
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            unique.append([a, b])
    return {"id": graph_id, "title": title, "nodes": nodes, "edges": unique}


def node_entry(node: Node, node_id: str, label: str, parent: str | None, *, group: bool = False,
               op_level: bool = False) -> dict[str, Any]:  # fmt: skip
    """A node as the contract has it, with inspect's figures: output shape and parameters."""
    shape = shape_text(node, op_level)
    metrics: dict[str, Any] = {"params": "unknown" if node.params is None else node.params}
    if not op_level:
        tp = node.trainable_params
        metrics["trainable params"] = "unknown" if tp is None else tp
    if shape:
        metrics["output shape"] = shape
    if len(node.call_shapes) > 1:
        metrics["calls"] = len(node.call_shapes)
    details: dict[str, str] = {}  # the page shows the id, type, inputs and outputs itself
    if node.flags:
        details["flags"] = ", ".join(node.flags)
    details.update(config_details(node.attrs if op_level else node.config))
    return {"id": node_id, "label": label, "type": node.op, "parent": parent, "group": group, "shape": shape,
            "params": node.params, "status": None, "metrics": metrics, "histogram": None,
            "details": details}  # fmt: skip


def shape_text(node: Node, op_level: bool = False) -> str:
    """`(None, 8)`, several outputs joined; unknown shapes left out of op graphs (most ops there
    state none, and a page of `?` says nothing)."""
    shapes = node.output_shapes
    if op_level:
        shapes = [s for s in shapes if s is not None]
    return ", ".join(format_shape(s) for s in shapes)


def config_details(config: Any) -> dict[str, str]:
    """A layer's config (an op's attributes) as short text entries; nested objects by their class."""
    if not isinstance(config, dict):
        return {}
    out = {}
    for key, value in display_config(config).items():
        if key in HIDDEN_KEYS or value is None or len(out) >= DETAIL_KEYS:
            continue
        if isinstance(value, dict) and "class_name" in value:
            value = value["class_name"]
        out[str(key)] = _clip(value if isinstance(value, str) else repr(value), DETAIL_CHARS)
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def producer(tensor: str) -> str:
    """The layer a Keras tensor name comes from (`dense:1`, `shared@1` -> the layer)."""
    return tensor.split("@", 1)[0].split(":", 1)[0]


class _Layers:
    """Layer-level nodes and edges, nested models as groups, collected level by level."""

    def __init__(self, nodes: list[dict[str, Any]], edges: list[list[str]]) -> None:
        self.nodes, self.edges = nodes, edges

    def add(self, graph: Graph, prefix: str, parent: str | None) -> None:
        by_name = {n.name: n for n in graph.nodes}
        for node in graph.nodes:
            node_id = prefix + node.name
            group = node.subgraph is not None and bool(node.subgraph.nodes)
            self.nodes.append(node_entry(node, node_id, node.name, parent, group=group))
            if group:
                self.add(node.subgraph, node_id + "/", node_id)  # type: ignore[arg-type]
            for call in node.inbound:
                for position, tensor in enumerate(call):
                    source = by_name.get(producer(tensor))
                    if source is None:
                        continue
                    for a in _exits(source, prefix):
                        for b in _entries(node, prefix, position, len(call)):
                            self.edges.append([a, b])


def _entries(node: Node, prefix: str, position: int, arity: int) -> list[str]:
    """Where an edge into `node` lands: the node, or the nested model's input layer for that input
    (its first layers when it has no input layer of its own, as a nested Sequential)."""
    sub = node.subgraph
    if sub is None or not sub.nodes:
        return [prefix + node.name]
    inner = prefix + node.name + "/"
    by_name = {n.name: n for n in sub.nodes}
    inputs = [by_name[producer(t.name)] for t in sub.inputs if producer(t.name) in by_name]
    if inputs:
        chosen = [inputs[position]] if len(inputs) == arity else inputs
    else:
        chosen = [n for n in sub.nodes if not any(producer(t) in by_name for call in n.inbound for t in call)]
    return [e for n in chosen for e in _entries(n, inner, 0, 1)]


def _exits(node: Node, prefix: str) -> list[str]:
    """Where an edge out of `node` starts: the node, or the nested model's output layers."""
    sub = node.subgraph
    if sub is None or not sub.nodes:
        return [prefix + node.name]
    inner = prefix + node.name + "/"
    by_name = {n.name: n for n in sub.nodes}
    outputs = [by_name[producer(t.name)] for t in sub.outputs if producer(t.name) in by_name]
    if not outputs:
        read = {producer(t) for n in sub.nodes for call in n.inbound for t in call}
        outputs = [n for n in sub.nodes if n.name not in read]
    return [e for n in outputs for e in _exits(n, inner)]


# ---------------------------------------------------------------- op graphs


def scope_of(name: str) -> list[str]:
    """The name scopes an op lives in, outermost first (`a/b/op` -> `a`, `a/b`); a TFLite fused
    name (`a/Relu;a/conv`) by its first part."""
    parts = name.split(";", 1)[0].split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts)) if all(parts[:i])]


def _op_level(graph: Graph, nodes: list[dict[str, Any]], edges: list[list[str]]) -> None:
    names = [n.name for n in graph.nodes]
    groups = scope_groups(names)
    used = set(names)
    group_ids: dict[str, str] = {}
    for scope in groups:
        gid = scope + "/"
        while gid in used:
            gid += "/"
        used.add(gid)
        group_ids[scope] = gid
    tensors: dict[str, str] = {}
    for node in graph.nodes:
        tensors[node.name] = node.name
        for out in node.attrs.get("outputs") or ():
            tensors.setdefault(str(out), node.name)
    for spec in graph.inputs:
        if _resolve(spec.name, tensors) is None:
            input_id = f"input:{spec.name}"
            while input_id in used:
                input_id += "'"
            used.add(input_id)
            tensors[spec.name] = input_id
            nodes.append({"id": input_id, "label": spec.name, "type": "Input", "parent": None, "group": False,
                          "shape": format_shape(spec.shape), "params": 0, "status": None,
                          "metrics": {"output shape": format_shape(spec.shape), "dtype": spec.dtype or "?"},
                          "histogram": None, "details": {"kind": "graph input"}})  # fmt: skip
    owner = {name: _owner(name, groups) for name in names}
    emitted: set[str] = set()
    totals = _group_totals(graph, owner, groups)
    for node in graph.nodes:
        scope = owner[node.name]
        _emit_groups(scope, groups, group_ids, totals, nodes, emitted)
        label = node.name[len(scope) + 1:] if scope else node.name
        nodes.append(node_entry(node, node.name, label, group_ids.get(scope or ""), op_level=True))
        for call in node.inbound:
            for tensor in call:
                source = _resolve(tensor, tensors)
                if source is not None:
                    edges.append([source, node.name])


def _resolve(tensor: str, tensors: dict[str, str]) -> str | None:
    """The node that produces a tensor: by output name, or by op name before `:k`."""
    if tensor in tensors:
        return tensors[tensor]
    base, sep, index = tensor.rpartition(":")
    return tensors.get(base) if sep and index.isdigit() else None


def scope_groups(names: list[str]) -> dict[str, str | None]:
    """The scopes drawn as groups, each with its parent group (None at the top): scopes holding at
    least two ops, less those holding nothing but one other scope (merged into it)."""
    counts: dict[str, int] = {}
    for name in names:
        for scope in scope_of(name):
            counts[scope] = counts.get(scope, 0) + 1
    kept = {s for s, c in counts.items() if c >= 2}
    parent = {s: next((p for p in reversed(scope_of(s + "/x")[:-1]) if p in kept), None) for s in kept}
    direct = {s: 0 for s in kept}
    for name in names:
        scope = _owner(name, kept)
        if scope:
            direct[scope] += 1
    children: dict[str | None, list[str]] = {}
    for s in sorted(kept, key=lambda s: s.count("/")):
        children.setdefault(parent[s], []).append(s)
    for s in sorted(kept, key=lambda s: s.count("/")):
        inner = children.get(s, [])
        if direct[s] == 0 and len(inner) == 1:
            only, up = inner[0], parent[s]
            parent[only] = up
            siblings = children.setdefault(up, [])
            siblings[siblings.index(s)] = only
            del parent[s]
    return parent


def _owner(name: str, groups: dict[str, Any] | set[str]) -> str:
    """The innermost group scope holding the op ("" when none)."""
    return next((s for s in reversed(scope_of(name)) if s in groups), "")


def _group_totals(graph: Graph, owner: dict[str, str], groups: dict[str, str | None]) -> dict[str, list]:
    """Per group: [ops inside, parameters inside (None when one is unknown)]."""
    totals: dict[str, list] = {s: [0, 0] for s in groups}
    for node in graph.nodes:
        scope: str | None = owner[node.name] or None
        while scope is not None:
            entry = totals[scope]
            entry[0] += 1
            entry[1] = None if entry[1] is None or node.params is None else entry[1] + node.params
            scope = groups[scope]
    return totals


def _emit_groups(scope: str, groups: dict[str, str | None], ids: dict[str, str], totals: dict[str, list],
                 nodes: list[dict[str, Any]], emitted: set[str]) -> None:  # fmt: skip
    """The groups holding an op, outermost first, each emitted once, before its first op."""
    chain = []
    s: str | None = scope or None
    while s is not None and s not in emitted:
        chain.append(s)
        s = groups[s]
    for s in reversed(chain):
        emitted.add(s)
        up = groups[s]
        label = s[len(up) + 1:] if up else s
        count, params = totals[s]
        nodes.append({"id": ids[s], "label": label, "type": "scope", "parent": ids[up] if up else None,
                      "group": True, "shape": "", "params": params, "status": None,
                      "metrics": {"ops": count, "params": "unknown" if params is None else params},
                      "histogram": None, "details": {"name scope": s}})  # fmt: skip
