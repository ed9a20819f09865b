"""Object-based checkpoint keys -> Keras layers and weight roles.

Keras tracks a model's variables by attribute path, not by layer name:
Keras 2 writes `layer_with_weights-1/kernel` (the second layer that has weights) and `layer-2`
(weightless layers by position), Keras 3 `_operations/3/_kernel` or `_layers/3/kernel`, and a
hand-written `tf.train.Checkpoint(model=...)` may name layers by attribute (`model/dense_1/kernel`).
Given the architecture (its IR graph), every path resolves to (layer path, role), and each layer's
weights are put in the order Keras creates them, so the result can be set on a rebuilt model.
"""

from __future__ import annotations

import re

from modeltool.ir import Graph, Node, Weight

#: variables that are training state, not the model
OPTIMIZER_PREFIXES = ("optimizer/", "keras_api/metrics/", "save_counter", "_optimizer/", "optimizer.")
#: where Keras keeps flat lists of a model's variables besides the per-layer attributes
VARIABLE_LISTS = {"variables", "trainable_variables", "non_trainable_variables", "_all_variables",
                  "keras_api", "_trainable_variables", "_non_trainable_variables"}  # fmt: skip
#: the order Keras layers create their weights in, for layers without a spec
ROLE_ORDER = ["depthwise_kernel", "pointwise_kernel", "kernel", "recurrent_kernel", "bias", "embeddings",
              "gamma", "beta", "moving_mean", "moving_variance", "alpha"]  # fmt: skip
INDEXED = re.compile(r"^(?:layer|layer_with_weights)-(\d+)$")
KERAS3_LISTS = ("_operations", "_layers", "layers", "_self_tracked_trackables", "_tracked")


def is_training_state(path: str) -> bool:
    """Optimizer slots and counters, metric accumulators, the save counter."""
    return path.startswith(OPTIMIZER_PREFIXES) or "/.slot/" in path or "/.OPTIMIZER_SLOT/" in path


def _weighted(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if (n.params or 0) > 0 or n.subgraph is not None and _has_params(n)]


def _has_params(node: Node) -> bool:
    return any((n.params or 0) > 0 for _, n in node.subgraph.walk()) if node.subgraph else (node.params or 0) > 0


def _indexable(graph: Graph) -> list[Node | None]:
    """Nodes as Keras indexes them: a Sequential built with an input shape has an InputLayer first."""
    nodes: list[Node | None] = list(graph.nodes)
    seq = all(n.op != "InputLayer" for n in graph.nodes)
    if seq and graph.inputs and graph.inputs[0].shape is not None:
        nodes.insert(0, None)
    return nodes


def resolve(path: str, graph: Graph) -> tuple[str, str, str] | None:
    """(layer path, sub-path inside the layer, role) of an object path, or None when no layer matches."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] in ("model", "_model", "net", "network") and not _match_one(parts[0], graph):
        parts = parts[1:]
    return _resolve(parts, graph, "")


def _match_one(part: str, graph: Graph) -> bool:
    return any(n.name == part for n in graph.nodes)


def _resolve(parts: list[str], graph: Graph, prefix: str) -> tuple[str, str, str] | None:
    node, rest = _step(parts, graph)
    if node is None:
        return None
    path = f"{prefix}{node.name}"
    if node.subgraph is not None and rest:
        return _resolve(rest, node.subgraph, path + "/")
    if not rest:
        return None
    role = rest[-1].lstrip("_")
    return path, "/".join(rest[:-1]), role


def _step(parts: list[str], graph: Graph) -> tuple[Node | None, list[str]]:
    if not parts:
        return None, []
    head = parts[0]
    m = INDEXED.match(head)
    if m:
        i = int(m.group(1))
        if head.startswith("layer_with_weights"):
            weighted = _weighted(graph.nodes)
            return (weighted[i] if i < len(weighted) else None), parts[1:]
        nodes = _indexable(graph)
        return (nodes[i] if i < len(nodes) else None), parts[1:]
    if head in KERAS3_LISTS and len(parts) > 1 and parts[1].isdigit():
        nodes = _indexable(graph)
        i = int(parts[1])
        return (nodes[i] if i < len(nodes) else None), parts[2:]
    if head == "_functional" and len(parts) > 1:
        return _step(parts[1:], graph)
    for n in graph.nodes:
        if n.name == head:
            return n, parts[1:]
    return None, parts


def order_in_layers(weights: list[Weight], graph: Graph, subpaths: dict[str, str]) -> list[Weight]:
    """Each layer's weights in creation order (checkpoints store them sorted by name)."""
    specs: dict[str, list[str]] = {}
    for path, node in graph.walk():
        roles = [s.role for s in node.attrs.get("weight_specs") or []]
        if roles:
            specs[path] = roles

    def key(w: Weight) -> tuple:
        sub = subpaths.get(w.name, "")
        direction = 1 if "backward" in sub else 0
        roles = specs.get(w.layer or "", [])
        rank = roles.index(w.role) if w.role in roles else (
            len(roles) + ROLE_ORDER.index(w.role) if w.role in ROLE_ORDER else 99)  # fmt: skip
        return (direction, rank, w.name)

    layer_order = {path: i for i, (path, _) in enumerate(graph.walk())}
    return sorted(weights, key=lambda w: (layer_order.get(w.layer or "", 1 << 30), *key(w)))
