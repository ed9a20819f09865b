"""Keras weight layouts in HDF5, read as lazy `Weight` handles attached to the layer graph.

Two layouts exist. Keras 1/2 (and Keras 3's legacy `.h5`) store `<group>/<layer>/<weight name>`
with a `weight_names` attribute per layer; Keras 1 names are `dense_1_W`, Keras 2 `dense_1/kernel:0`,
Keras 3 `dense_1/kernel`. Keras 3 `.weights.h5` (alone or inside `.keras`) stores weights by
attribute path, `layers/<snake class name>[_N]/vars/<index>`, with no layer names or roles; those are
recovered from the architecture (the order of layers and `layers.WeightSpec.k3`). Only shapes and
dtypes are read here; values are read when a `Weight` is asked for them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from modeltool.errors import LoadError
from modeltool.ir import Graph, Node, Weight

H5Opener = Callable[[], AbstractContextManager[Any]]

CHUNK_ELEMENTS = 1 << 22  # values read per chunk when streaming statistics
NON_TRAINABLE_ROLES = {"moving_mean", "moving_variance", "running_mean", "running_std", "count", "mean", "variance"}
KERAS1_ROLES = {
    "W": "kernel", "b": "bias", "U": "recurrent_kernel", "gamma": "gamma", "beta": "beta",
    "running_mean": "moving_mean", "running_std": "moving_variance", "alphas": "alpha",
    "depthwise_kernel": "depthwise_kernel", "pointwise_kernel": "pointwise_kernel",
}  # fmt: skip
#: Keras 3 object key (snake class name) -> roles of its vars, for weights files without architecture
K3_ROLE_GUESS = {
    "dense": ["kernel", "bias"], "embedding": ["embeddings"], "conv1d": ["kernel", "bias"],
    "conv2d": ["kernel", "bias"], "conv3d": ["kernel", "bias"], "conv1d_transpose": ["kernel", "bias"],
    "conv2d_transpose": ["kernel", "bias"], "conv3d_transpose": ["kernel", "bias"],
    "depthwise_conv2d": ["kernel", "bias"], "depthwise_conv1d": ["kernel", "bias"],
    "separable_conv2d": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "separable_conv1d": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "layer_normalization": ["gamma", "beta"], "normalization": ["mean", "variance", "count"],
    "cell": ["kernel", "recurrent_kernel", "bias"], "p_re_lu": ["alpha"],
}  # fmt: skip


def h5_reader(opener: H5Opener, path: str) -> Callable[[], Iterator[np.ndarray]]:
    """A chunked reader of one dataset; opens the file only while reading."""

    def read() -> Iterator[np.ndarray]:
        with opener() as f:
            ds = f[path]
            if ds.shape == () or ds.size <= CHUNK_ELEMENTS:
                yield np.asarray(ds[()])
                return
            row = max(int(math.prod(ds.shape[1:])), 1)
            step = max(1, CHUNK_ELEMENTS // row)
            for start in range(0, ds.shape[0], step):
                yield np.asarray(ds[start : start + step])

    return read


def _decode(values: Any) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in list(values)]


def _dtype(ds: Any) -> str:
    return str(ds.dtype)


# ---------------------------------------------------------------- Keras 1/2 layout


def legacy_weights(opener: H5Opener, group: Any, group_path: str, graph: Graph | None) -> list[Weight]:
    """Weights of a `model_weights` group (or the root of a save_weights file)."""
    names = _decode(group.attrs.get("layer_names", []))
    if not names:
        names = [k for k in group.keys() if isinstance(k, str) and k != "top_level_model_weights"]
    nodes = {n.name: n for n in graph.nodes} if graph is not None else {}
    out: list[Weight] = []
    for lname in names + (["top_level_model_weights"] if "top_level_model_weights" in group else []):
        if lname not in group:
            raise LoadError(f"layer {lname!r} is listed in layer_names but its weight group is missing")
        g = group[lname]
        wnames = _decode(g.attrs.get("weight_names", []))
        node = nodes.get(lname)
        for wn in wnames:
            if wn not in g:
                raise LoadError(f"weight {wn!r} of layer {lname!r} is listed in weight_names but missing")
            ds = g[wn]
            clean = wn[:-2] if wn.endswith(":0") else wn
            layer, role, full = _legacy_owner(lname, clean, node)
            if role == "depthwise_kernel" and _op_at(graph, layer).startswith("DepthwiseConv"):
                role = "kernel"  # one vocabulary: Keras 3's name for the same array
            trainable = role not in NON_TRAINABLE_ROLES and _layer_trainable(graph, layer)
            path = "/".join(p for p in (group_path, lname, wn) if p)
            out.append(Weight(full, layer, role, tuple(ds.shape), _dtype(ds), trainable, h5_reader(opener, path)))
    return out


def _legacy_owner(group_name: str, clean: str, node: Node | None) -> tuple[str, str, str]:
    """(layer path, role, full name) of a stored weight name inside layer group `group_name`."""
    if "/" not in clean:  # Keras 1: dense_1_W, gru_1_W_z, batchnormalization_1_running_mean
        role = _keras1_role(clean)
        return group_name, role, f"{group_name}/{role}"
    parts = clean.split("/")
    if group_name in parts[:-1]:  # Keras 3 may prefix the model name: "model/dense/kernel"
        parts = parts[parts.index(group_name) + 1 :]
    role = parts[-1]
    layer = group_name
    sub = node.subgraph if node is not None else None
    rest = parts[:-1]
    while sub is not None and rest:
        inner = next((n for n in sub.nodes if n.name == rest[0]), None)
        if inner is None:
            # Keras 2 names a weight by its own layer only, however deep that layer sits: a Teachable
            # Machine export keeps MobileNetV2's "Conv1/kernel" in the group of the Sequential around it
            found = _nested_path(sub, rest[0])
            if found is None:
                break
            layer = "/".join([layer, *found])
            rest = rest[1:]
            sub = _node_at(sub, found).subgraph
            continue
        layer = f"{layer}/{inner.name}"
        rest = rest[1:]
        sub = inner.subgraph
    return layer, role, "/".join([group_name, *parts])


def _nested_path(graph: Graph, name: str, depth: int = 8) -> list[str] | None:
    """Names from `graph` down to the one layer called `name` inside its nested models, or None."""
    for node in graph.nodes:
        if node.subgraph is not None and depth > 0:
            if any(n.name == name for n in node.subgraph.nodes):
                return [node.name, name]
            below = _nested_path(node.subgraph, name, depth - 1)
            if below is not None:
                return [node.name, *below]
    return None


def _node_at(graph: Graph, names: list[str]) -> Node:
    node = None
    for part in names:
        node = next(n for n in graph.nodes if n.name == part)
        graph = node.subgraph
    assert node is not None
    return node


def _op_at(graph: Graph | None, layer_path: str) -> str:
    g, node = graph, None
    for part in layer_path.split("/"):
        if g is None:
            return ""
        node = next((n for n in g.nodes if n.name == part), None)
        if node is None:
            return ""
        g = node.subgraph
    return node.op if node is not None else ""


def _keras1_role(name: str) -> str:
    for suffix in sorted(KERAS1_ROLES, key=len, reverse=True):
        if name.endswith("_" + suffix):
            return KERAS1_ROLES[suffix]
    m = re.match(r".*_([WUb])_([a-z])$", name)
    if m:
        return f"{KERAS1_ROLES[m.group(1)]}_{m.group(2)}"
    return name.rsplit("_", 1)[-1]


def _layer_trainable(graph: Graph | None, layer_path: str | None) -> bool:
    if graph is None or not layer_path:
        return True
    parts = layer_path.split("/")
    g: Graph | None = graph
    for part in parts:
        if g is None:
            return True
        node = next((n for n in g.nodes if n.name == part), None)
        if node is None:
            return True
        if isinstance(node.config, dict) and node.config.get("trainable") is False:
            return False
        g = node.subgraph
    return True


# ---------------------------------------------------------------- Keras 3 layout


def snake_case(name: str) -> str:
    """Keras 3's `naming.to_snake_case`, used for the object keys of `.weights.h5`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def k3_weights(opener: H5Opener, root: Any, graph: Graph | None) -> list[Weight]:
    """Weights of a Keras 3 `.weights.h5`, named and given roles through the architecture."""
    out: list[Weight] = []
    claimed: set[str] = set()
    if graph is not None and "layers" in root:
        _k3_graph(opener, root, "layers", graph, "", out, claimed)
    _k3_rest(opener, root, "", [], out, claimed, graph)
    return out


def k3_groups(graph: Graph, base: str = "layers", prefix: str = "", *, recurse: bool = True
               ) -> Iterator[tuple[Node, str, str]]:  # fmt: skip
    """(node, layer path, `.weights.h5` group) of every layer in Keras's order: the object key is
    the snake-case class name, numbered per class (`dense`, `dense_1`); nested models' layers sit
    under `<group>/layers` (walked unless `recurse` is False). Read and written by the same rule."""
    used: dict[str, int] = {}
    for node in graph.nodes:
        key = snake_case(node.op)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        gpath, path = f"{base}/{key}", f"{prefix}{node.name}"
        yield node, path, gpath
        if recurse and node.subgraph is not None:
            yield from k3_groups(node.subgraph, f"{gpath}/layers", path + "/")


def _k3_graph(opener, root, base: str, graph: Graph, prefix: str, out: list, claimed: set) -> None:
    for node, layer_path, gpath in k3_groups(graph, base, prefix, recurse=False):
        if gpath not in root:
            continue
        if node.subgraph is not None:
            if f"{gpath}/layers" in root:
                _k3_graph(opener, root, f"{gpath}/layers", node.subgraph, layer_path + "/", out, claimed)
            continue
        specs = node.attrs.get("weight_specs") or []
        paths = [f"{gpath}/{'/'.join(p for p in (s.k3[0], 'vars') if p)}/{s.k3[1]}" for s in specs]
        stored = _datasets_under(root[gpath], gpath)
        if not specs or sorted(paths) != sorted(stored):
            continue  # layout differs from what the config predicts: left to the generic walk
        trainable_layer = _layer_trainable_node(node)
        for spec, path in zip(specs, paths):
            ds = root[path]
            full = "/".join(p for p in (layer_path, spec.prefix, spec.role) if p)
            out.append(
                Weight(
                    full,
                    layer_path,
                    spec.role,
                    tuple(ds.shape),
                    _dtype(ds),
                    spec.trainable and trainable_layer,
                    h5_reader(opener, path),
                )  # fmt: skip
            )
            claimed.add(path)


def _layer_trainable_node(node: Node) -> bool:
    return not (isinstance(node.config, dict) and node.config.get("trainable") is False)


def _datasets_under(group: Any, path: str) -> list[str]:
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            found.append(f"{path}/{name}")

    group.visititems(visit)
    return found


def _k3_rest(opener, root, path: str, owners: list[str], out: list, claimed: set, graph) -> None:
    """Every unclaimed `.../vars/N` dataset, named by the `name` attributes of its owners."""
    group = root[path] if path else root
    keys = [k for k in group.keys() if isinstance(k, str)]  # h5py gives bytes for a name that is not UTF-8
    if path == "":
        keys = [k for k in keys if k not in ("optimizer", "metrics")]
    # Keras creates forward_layer before backward_layer; h5py lists them alphabetically.
    keys.sort(key=lambda k: (k != "vars", k == "backward_layer", k))
    for key in keys:
        sub = f"{path}/{key}" if path else key
        obj = group[key]
        if not hasattr(obj, "keys"):
            continue
        if key == "vars":
            obj_key = path.rsplit("/", 1)[-1] if path else ""
            idx = sorted((k for k in obj.keys() if isinstance(k, str) and k.isdigit()), key=int)
            guess = K3_ROLE_GUESS.get(re.sub(r"_\d+$", "", obj_key))
            roles = guess if guess and len(guess) == len(idx) else [f"var{i}" for i in idx]
            layer = "/".join(owners) or None
            for i, role in zip(idx, roles):
                dpath = f"{sub}/{i}"
                if dpath in claimed:
                    continue
                ds = obj[i]
                out.append(
                    Weight(
                        "/".join([*owners, role]),
                        layer,
                        role,
                        tuple(ds.shape),
                        _dtype(ds),
                        role not in NON_TRAINABLE_ROLES,
                        h5_reader(opener, dpath),
                    )  # fmt: skip
                )
        else:
            name = obj["vars"].attrs.get("name") if "vars" in obj else None
            name = name.decode() if isinstance(name, bytes) else name
            nxt = [*owners, str(name)] if name and key != "layers" else owners
            _k3_rest(opener, root, sub, nxt, out, claimed, graph)


# ---------------------------------------------------------------- attach to the graph


def attach(graph: Graph | None, weights: list[Weight]) -> None:
    """Layer params from the stored weights (the file is the truth where it has weights)."""
    if graph is None or not weights:
        return
    _attach(graph, weights, "")


def _attach(graph: Graph, weights: list[Weight], prefix: str) -> None:
    for node in graph.nodes:
        path = f"{prefix}{node.name}"
        mine = [w for w in weights if w.layer == path or (w.layer or "").startswith(path + "/")]
        if node.subgraph is not None:
            _attach(node.subgraph, mine, path + "/")
        if mine or node.params is None:
            node.params = sum(w.size for w in mine)
            node.trainable_params = sum(w.size for w in mine if w.trainable)
