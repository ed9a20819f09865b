"""Which ops of a TF graph draw random numbers, and which inputs steer them.

A reference that draws random numbers at inference (a dropout left in a frozen graph, fed by a
`keep_prob` placeholder) computes different outputs on the same inputs; comparing a converted model
with it measures noise. `verify` finds that out by running the reference twice; this module names the
culprits for the report. It reads GraphDef protos only (TensorFlow's or modeltool's own), so it
works without importing TensorFlow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

#: stateful random ops (stateless ones are deterministic given their seed input)
RANDOM_OPS = {
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "ParameterizedTruncatedNormal",
    "RandomGamma", "RandomPoisson", "RandomPoissonV2", "Multinomial", "RandomShuffle", "RandomCrop",
    "StatefulUniform", "StatefulStandardNormalV2", "StatefulTruncatedNormal", "StatefulUniformInt",
    "StatefulUniformFullInt", "RngReadAndSkip", "RandomShuffleQueueV2",
}  # fmt: skip
#: how far downstream of a random op to look for the op that mixes it with an input
MIX_DEPTH = 6


def _base(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def random_sources(graph_def: Any, input_tensors: Iterable[str]) -> tuple[list[str], list[str]]:
    """(random ops as 'name (Type)', boundary inputs that reach the same ops as the random values
    within a few steps, e.g. dropout's keep_prob), over the graph and its function library."""
    graphs = [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]
    inputs = {_base(t) for t in input_tensors}
    found: list[str] = []
    driving: set[str] = set()
    for nodes in graphs:
        by_name = {n.name: n for n in nodes}
        consumers: dict[str, list[str]] = {}
        for n in nodes:
            for i in n.input:
                consumers.setdefault(_base(i), []).append(n.name)
        for n in nodes:
            if n.op not in RANDOM_OPS:
                continue
            found.append(f"{n.name} ({n.op})")
            for mixer in _mixers(n.name, consumers, by_name, MIX_DEPTH):
                driving |= _upstream_inputs(by_name.get(mixer), by_name, inputs, exclude=n.name)
    return found, sorted(driving)


def _mixers(start: str, consumers: dict[str, list[str]], by_name: dict[str, Any], depth: int) -> set[str]:
    """The first ops downstream of a random op that combine its values with something that is not
    a constant (dropout's `keep_prob + uniform`); the walk stops at each of them."""
    out, seen, queue = set(), {start}, deque([(start, 0)])
    while queue:
        name, d = queue.popleft()
        for c in consumers.get(name, []):
            if c in seen or d >= depth:
                continue
            seen.add(c)
            others = [_base(i) for i in by_name[c].input if _base(i) != name and not i.startswith("^")]
            if any(not _constant(by_name.get(o), by_name) for o in others):
                out.add(c)
            else:
                queue.append((c, d + 1))
    return out


def _constant(node: Any, by_name: dict[str, Any], depth: int = 6) -> bool:
    """True for a Const, a Shape, or an op computed from those only (`max - min` of a uniform)."""
    if node is None or node.op in ("Placeholder", "PlaceholderWithDefault") or node.op in RANDOM_OPS:
        return False
    if node.op in ("Const", "Shape"):
        return True
    data = [i for i in node.input if not i.startswith("^")]
    return depth > 0 and bool(data) and all(_constant(by_name.get(_base(i)), by_name, depth - 1) for i in data)


def _upstream_inputs(node: Any, by_name: dict[str, Any], inputs: set[str], exclude: str, limit: int = 200) -> set[str]:
    """Boundary inputs feeding `node`, not counting what reaches it through the random op `exclude`."""
    out, queue, seen = set(), deque([node] if node is not None else []), {exclude}
    while queue and len(seen) < limit:
        n = queue.popleft()
        for i in n.input:
            base = _base(i)
            if base in seen:
                continue
            seen.add(base)
            if base in inputs:
                out.add(base)
            elif base in by_name:
                queue.append(by_name[base])
    return out
