"""The common in-memory model description every loader produces.

One small set of dataclasses for every format: Keras files give a layer-level graph, ONNX and
TFLite an op-level one. Weight values are never read by a loader: each `Weight` holds a reader that
opens the file when `.value()` or `.stats()` is called, so a multi-GB file is inspected in
milliseconds. Pure Python + numpy, no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modeltool.formats import Format

Shape = tuple  # tuple[int | None, ...]; a None shape means "unknown rank"


def shape_to_list(shape: Shape | None) -> list | None:
    """JSON form of a shape: unknown dims become null."""
    return None if shape is None else [None if d is None else int(d) for d in shape]


def format_shape(shape: Shape | None) -> str:
    """Keras-style text for a shape: `(None, 28, 28)`; `?` when unknown."""
    if shape is None:
        return "?"
    dims = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


@dataclass
class TensorSpec:
    """A named tensor at the model boundary (or a signature's)."""

    name: str
    shape: Shape | None
    dtype: str | None
    #: the graph tensor behind a signature key ("serving_default_x:0"), where it differs
    tensor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "shape": shape_to_list(self.shape), "dtype": self.dtype}
        return {**out, "tensor": self.tensor} if self.tensor else out


@dataclass
class WeightStats:
    """Streamed statistics of one weight (computed chunk by chunk, never all in memory twice)."""

    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("min", "max", "mean", "std", "nan", "inf", "count")}


#: reads chunks of a weight's values (flattened); the loader decides how (h5py slices, mmap, ...)
ChunkReader = Callable[[], Iterator[np.ndarray]]


@dataclass
class Weight:
    """A named weight. `layer` is the owning layer path ("inner/dense_1"), `role` its part in it."""

    name: str
    layer: str | None
    role: str
    shape: Shape
    dtype: str
    trainable: bool = True
    reader: ChunkReader | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1

    def value(self) -> np.ndarray:
        """Read the whole array from the file (the only place values are materialised)."""
        if self.reader is None:
            raise ValueError(f"weight {self.name!r} has no stored value")
        from modeltool.limits import check_elements

        check_elements(self.shape, f"weight {self.name!r}")
        parts = [np.asarray(c).reshape(-1) for c in self._chunks()]
        flat = np.concatenate(parts) if len(parts) != 1 else parts[0]
        if flat.size != self.size:
            from modeltool.errors import LoadError

            raise LoadError(f"weight {self.name!r}: {flat.size} values stored for shape {self.shape} (corrupted file)")
        return flat.reshape(self.shape)

    def _chunks(self) -> Iterator[np.ndarray]:
        """The reader's chunks; a failure of the underlying library becomes a LoadError naming the weight
        (values are read lazily, long after the loader has returned)."""
        from modeltool.errors import LoadError, ModelToolError

        assert self.reader is not None
        try:
            yield from self.reader()
        except ModelToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py/protobuf/mmap errors on a corrupted file
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise LoadError(f"weight {self.name!r} cannot be read: {type(exc).__name__}: {text}") from exc

    def stats(self) -> WeightStats:
        """Min/max/mean/std and NaN/Inf counts, accumulated over chunks."""
        if self.reader is None:
            raise ValueError(f"weight {self.name!r} has no stored value")
        from modeltool.limits import check_elements

        check_elements(self.shape, f"weight {self.name!r}")
        count = nan = inf = 0
        lo, hi = math.inf, -math.inf
        total = total_sq = 0.0
        finite = 0
        for chunk in self._chunks():
            c = np.asarray(chunk).reshape(-1)
            if c.dtype.kind not in "fiub" and c.dtype.kind != "c":
                c = c.astype(np.float64)
            count += c.size
            if c.dtype.kind == "f":
                isnan = np.isnan(c)
                isinf = np.isinf(c)
                nan += int(isnan.sum())
                inf += int(isinf.sum())
                c = c[~(isnan | isinf)]
            if c.size == 0:
                continue
            c64 = c.astype(np.float64)
            lo, hi = min(lo, float(c64.min())), max(hi, float(c64.max()))
            total += float(c64.sum())
            total_sq += float(np.square(c64).sum())
            finite += c.size
        if finite == 0:
            return WeightStats(None, None, None, None, nan, inf, count)
        mean = total / finite
        var = max(total_sq / finite - mean * mean, 0.0)
        return WeightStats(lo, hi, mean, math.sqrt(var), nan, inf, count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "role": self.role,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "trainable": self.trainable,
        }


@dataclass
class Node:
    """One layer (Keras formats) or one op (ONNX, TFLite, TF graphs).

    `inbound` holds, per call of the layer, the tensors it consumes as "layer" or "layer:k" names
    (k = output index when the producer has several). `output_shapes` are those of the first call;
    shared layers keep every call in `call_shapes`. `params` is None when it cannot be known
    (a custom layer without weights): never a guess.
    """

    name: str
    op: str
    config: dict[str, Any] = field(default_factory=dict)
    inbound: list[list[str]] = field(default_factory=list)
    output_shapes: list[Shape | None] = field(default_factory=list)
    call_shapes: list[list[Shape | None]] = field(default_factory=list)
    params: int | None = 0
    trainable_params: int | None = 0
    subgraph: Graph | None = None
    flags: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def output_shape(self) -> Shape | list[Shape | None] | None:
        """The single output shape, or the list when the layer has several outputs."""
        if len(self.output_shapes) == 1:
            return self.output_shapes[0]
        return list(self.output_shapes) if self.output_shapes else None

    def to_dict(self) -> dict[str, Any]:
        out = self.output_shapes
        return {
            "name": self.name,
            "class_name": self.op,
            "output_shape": shape_to_list(out[0]) if len(out) == 1 else [shape_to_list(s) for s in out],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "inbound": [list(call) for call in self.inbound],
            "flags": list(self.flags),
            **({"layers": [n.to_dict() for n in self.subgraph.nodes]} if self.subgraph else {}),
        }


@dataclass
class Graph:
    """Nodes in topological order plus the boundary tensors. `level` is "layer" or "op"."""

    nodes: list[Node]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    level: str = "layer"
    name: str | None = None

    def find(self, key: str | int) -> Node:
        """A node by name or index (like Keras's `get_layer`); KeyError/IndexError otherwise."""
        if isinstance(key, int):
            return self.nodes[key]
        for node in self.nodes:
            if node.name == key:
                return node
        raise KeyError(key)

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Node]]:
        """Every node with its path, nested models included ("outer/inner/dense")."""
        for node in self.nodes:
            path = f"{prefix}{node.name}"
            yield path, node
            if node.subgraph is not None:
                yield from node.subgraph.walk(path + "/")


@dataclass
class Signature:
    """A named entry point (SavedModel signature, TFLite SignatureDef)."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


@dataclass
class Params:
    total: int | None
    trainable: int | None
    non_trainable: int | None
    source: str  # "weights" (counted from the file) or "config" (computed from layer configs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "trainable": self.trainable,
            "non_trainable": self.non_trainable,
            "source": self.source,
        }


@dataclass
class Metadata:
    """Who wrote the file and how it was trained."""

    format: Format
    format_description: str
    file_size: int
    writer: dict[str, str] = field(default_factory=dict)  # keras_version, backend, producer, ...
    training: dict[str, Any] | None = None  # optimizer, loss, metrics when the file holds them
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "format_description": self.format_description,
            "file_size": self.file_size,
            "writer": dict(self.writer),
            "training": self.training,
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass
class Model:
    """What modeltool knows about one model file. Built by `modeltool.load`."""

    path: str
    metadata: Metadata
    graph: Graph | None
    weights: list[Weight] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the architecture config as stored (any Keras version); what a runnable model is rebuilt from
    config: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def format(self) -> Format:
        return self.metadata.format

    @property
    def inputs(self) -> list[TensorSpec]:
        if self.graph is not None:
            return self.graph.inputs
        return self.signatures[0].inputs if self.signatures else []

    @property
    def outputs(self) -> list[TensorSpec]:
        if self.graph is not None:
            return self.graph.outputs
        return self.signatures[0].outputs if self.signatures else []

    @property
    def layers(self) -> list[Node]:
        return self.graph.nodes if self.graph is not None else []

    def get_layer(self, key: str | int) -> Node:
        """A layer (or op) by name, path ("outer/inner") or index."""
        if self.graph is None:
            raise KeyError(key)
        if isinstance(key, int):
            return self.graph.find(key)
        for path, node in self.graph.walk():
            if path == key or node.name == key:
                return node
        raise KeyError(key)

    @property
    def params(self) -> Params:
        """Parameter counts: from the stored weights when the file has them, else from configs."""
        if self.weights:
            total = sum(w.size for w in self.weights)
            trainable = sum(w.size for w in self.weights if w.trainable)
            return Params(total, trainable, total - trainable, "weights")
        nodes = self.layers
        if not nodes or any(n.params is None or n.trainable_params is None for n in nodes):
            return Params(None, None, None, "config")
        total = sum(n.params for n in nodes)  # type: ignore[misc]
        trainable = sum(n.trainable_params for n in nodes)  # type: ignore[misc]
        return Params(total, trainable, total - trainable, "config")


def display_config(config: Any) -> Any:
    """The config with Lambda bytecode replaced by a description (it is unreadable and unsafe)."""
    if not isinstance(config, dict):
        return config
    out = {}
    for k, v in config.items():
        if k == "function" and (isinstance(v, list) or (isinstance(v, dict) and "code" in (v.get("config") or {}))):
            out[k] = "<bytecode, not executed>"
        elif isinstance(v, dict):
            out[k] = display_config(v)
        else:
            out[k] = v
    return out
