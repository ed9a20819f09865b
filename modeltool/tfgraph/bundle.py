"""TensorFlow checkpoints (tensor bundles) read without TensorFlow.

A checkpoint is `<prefix>.index`, a LevelDB-style sorted table mapping each tensor name to a
`BundleEntryProto` (dtype, shape, shard, offset, size), plus `<prefix>.data-NNNNN-of-MMMMM`
shards holding the raw little-endian bytes. The index is read whole (it is small); tensor values
are read only when asked, one `pread` per tensor, so listing a multi-GB checkpoint is instant.
Object-based checkpoints also store their object graph as the string tensor
`_CHECKPOINTABLE_OBJECT_GRAPH`, which names every variable by its attribute path.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from modeltool.errors import LoadError, UnsupportedError
from modeltool.tfgraph import protos
from modeltool.wire import varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
CHUNK_BYTES = 1 << 24


@dataclass
class BundleEntry:
    """Where one stored tensor lives."""

    key: str
    dtype: str
    shape: tuple
    shard: int
    offset: int
    size: int
    sliced: bool = False
    crc32c: int = 0


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (keys are prefix-compressed against the previous one)."""
    if len(block) < 4:
        raise ValueError("block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("bad restart count")
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        vlen, pos = varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ValueError("entry runs past the end of the block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + vlen]
        pos += vlen


def _read_block(data: bytes, handle: bytes) -> bytes:
    offset, pos = varint(handle, 0)
    size, _ = varint(handle, pos)
    if offset + size + 5 > len(data):
        raise ValueError("block handle points past the end of the file")
    kind = data[offset + size]
    block = data[offset : offset + size]
    if kind == 0:
        return block
    if kind == 1:
        return snappy_decompress(block)
    raise UnsupportedError(f"checkpoint index block compression type {kind} is not supported")


def snappy_decompress(buf: bytes) -> bytes:
    """Raw Snappy (what TF's table writer uses for index blocks); blocks are small, so pure Python."""
    size, pos = varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(buf[pos : pos + extra], "little")
                pos += extra
            n += 1
            if pos + n > len(buf):
                raise ValueError("snappy literal runs past the end")
            out += buf[pos : pos + n]
            pos += n
            continue
        if kind == 1:
            length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | buf[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length, offset = (tag >> 2) + 1, int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise ValueError("snappy copy offset out of range")
        for _ in range(length):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != size:
        raise ValueError("snappy block decompressed to the wrong size")
    return bytes(out)


def read_table(path: str) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable file, in key order."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < FOOTER_BYTES:
        raise ValueError("file is shorter than the table footer")
    footer = data[-FOOTER_BYTES:]
    (magic,) = struct.unpack("<Q", footer[-8:])
    if magic != TABLE_MAGIC:
        raise ValueError("bad table magic number (not a checkpoint index)")
    _, pos = varint(footer, 0)  # metaindex handle: offset,
    _, pos = varint(footer, pos)  # size
    index = _read_block(data, footer[pos:])
    for _, handle in _block_entries(index):
        yield from _block_entries(_read_block(data, handle))


class Bundle:
    """One checkpoint: its entries by key, lazy values, and the object graph when there is one."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        index = prefix + ".index"
        if not os.path.isfile(index):
            raise LoadError(f"{prefix}: checkpoint index {os.path.basename(index)} is missing")
        if os.path.getsize(index) == 0:
            raise LoadError(f"{index}: checkpoint index is empty")
        self.entries: dict[str, BundleEntry] = {}
        self.num_shards = 1
        try:
            for key, value in read_table(index):
                self._add(key.decode("utf-8", "replace"), value)
        except (ValueError, struct.error) as exc:
            raise LoadError(f"{index}: truncated or corrupted checkpoint index ({exc})") from exc
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError on a corrupted entry
            if isinstance(exc, (LoadError, UnsupportedError)):
                raise
            raise LoadError(f"{index}: corrupted checkpoint entry ({type(exc).__name__}: {exc})") from exc
        self._check_shards()

    def _add(self, key: str, value: bytes) -> None:
        if key == "":
            header = protos.parse("BundleHeaderProto", value)
            self.num_shards = max(int(header.num_shards), 1)
            if header.endianness != 0:
                raise UnsupportedError(f"{self.prefix}: big-endian checkpoints are not supported")
            return
        e = protos.parse("BundleEntryProto", value)
        shape = protos.shape_of(e.shape) or ()
        dtype = protos.dtype_name(e.dtype)
        if dtype in protos.DTYPES.values() and dtype not in ("string", "resource", "variant") and not e.slices:
            from modeltool.limits import check_elements

            n = check_elements(shape, f"{self.prefix}: tensor {key!r}")
            itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
            if int(e.size) != n * itemsize:
                raise LoadError(
                    f"{self.prefix}: tensor {key!r} is {e.size} bytes in the index, its shape {shape} needs "
                    f"{n * itemsize} (corrupted index)"
                )
        self.entries[key] = BundleEntry(
            key,
            protos.dtype_name(e.dtype),
            shape,
            int(e.shard_id),
            int(e.offset),
            int(e.size),
            len(e.slices) > 0,
            int(e.crc32c),
        )

    def shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _check_shards(self) -> None:
        for shard in sorted({e.shard for e in self.entries.values()}):
            path = self.shard_path(shard)
            if not os.path.isfile(path):
                raise LoadError(f"{self.prefix}: data shard {os.path.basename(path)} is missing")
            size = os.path.getsize(path)
            ends = [e.offset + e.size for e in self.entries.values() if e.shard == shard]
            if ends and max(ends) > size:
                raise LoadError(f"{path}: data shard is truncated ({size} bytes, the index needs {max(ends)})")

    def raw(self, key: str) -> bytes:
        e = self.entries[key]
        with open(self.shard_path(e.shard), "rb") as fh:
            return os.pread(fh.fileno(), e.size, e.offset)

    def reader(self, key: str) -> Any:
        """A chunk reader for `Weight` (numeric tensors only)."""
        e = self.entries[key]
        if e.dtype not in protos.DTYPES.values() or e.dtype in ("string", "resource", "variant", "bfloat16"):
            raise LoadError(f"{self.prefix}: tensor {key!r} has dtype {e.dtype}, not a numeric type (corrupted index?)")
        dtype = np.dtype(e.dtype)
        path = self.shard_path(e.shard)

        def read() -> Iterator[np.ndarray]:
            step = max(CHUNK_BYTES // dtype.itemsize, 1) * dtype.itemsize
            with open(path, "rb") as fh:
                for start in range(0, max(e.size, 1), step):
                    n = min(step, e.size - start)
                    if n <= 0:
                        break
                    yield np.frombuffer(os.pread(fh.fileno(), n, e.offset + start), dtype=dtype)

        return read

    def string_scalar(self, key: str) -> bytes:
        """A scalar string tensor: varint length, 4-byte checksum of the lengths, bytes."""
        raw = self.raw(key)
        n, pos = varint(raw, 0)
        return raw[pos + 4 : pos + 4 + n]

    @cached_property
    def object_graph(self) -> Any | None:
        """The TrackableObjectGraph of an object-based checkpoint (None for TF1 name-based ones)."""
        if OBJECT_GRAPH_KEY not in self.entries:
            return None
        try:
            return protos.parse("TrackableObjectGraph", self.string_scalar(OBJECT_GRAPH_KEY))
        except Exception as exc:  # noqa: BLE001 - DecodeError
            raise LoadError(f"{self.prefix}: corrupted checkpoint object graph ({exc})") from exc

    def object_paths(self) -> dict[str, str]:
        """{checkpoint key: attribute path from the root object} ("model/layer_with_weights-0/kernel")."""
        graph = self.object_graph
        if graph is None:
            return {}
        paths = object_paths(graph.nodes)
        out: dict[str, str] = {}
        for node_id, path in paths.items():
            for attr in graph.nodes[node_id].attributes:
                if attr.name == "VARIABLE_VALUE":
                    out[attr.checkpoint_key] = path
                else:
                    out[attr.checkpoint_key] = f"{path}/{attr.name}" if path else attr.name
        for node in graph.nodes:  # optimizer slots hang off the variable they belong to
            for slot in node.slot_variables:
                orig = paths.get(slot.original_variable_node_id)
                slot_node = (
                    graph.nodes[slot.slot_variable_node_id] if slot.slot_variable_node_id < len(graph.nodes) else None
                )
                if orig is None or slot_node is None:
                    continue
                for attr in slot_node.attributes:
                    out.setdefault(attr.checkpoint_key, f"{orig}/.slot/{slot.slot_name}")
        return out


def object_paths(nodes: Any) -> dict[int, str]:
    """{node id: attribute path from the root}: breadth-first, so the shortest path names each
    object, and through Keras's flat variable lists (`trainable_variables/0`) only when no
    per-layer path reaches it."""
    from modeltool.tfgraph.variables import VARIABLE_LISTS

    paths: dict[int, str] = {0: ""}
    for allow_lists in (False, True):
        order = list(paths)
        for node_id in order:
            for child in nodes[node_id].children:
                if child.node_id in paths or child.node_id >= len(nodes):
                    continue
                if not allow_lists and child.local_name in VARIABLE_LISTS:
                    continue
                base = paths[node_id]
                paths[child.node_id] = f"{base}/{child.local_name}" if base else child.local_name
                order.append(child.node_id)
    return paths


def resolve_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix, its .index/.data file, or a directory.

    In a directory, the `checkpoint` state file's latest entry wins when its files exist; a state
    file naming a missing checkpoint (common after copying only some files) falls back to the
    only/newest index present, and says nothing about it here (the loader warns)."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            latest = _state_latest(state)
            if latest is not None:
                cand = latest if os.path.isabs(latest) else str(p / latest)
                if os.path.isfile(cand + ".index"):
                    return cand
        indexes = sorted(p.glob("*.index"), key=lambda f: f.stat().st_mtime)
        if not indexes:
            raise LoadError(f"{path}: directory has no checkpoint index (*.index)")
        return str(indexes[-1])[: -len(".index")]
    name = p.name
    if name.endswith(".index"):
        return str(p)[: -len(".index")]
    if ".data-" in name:
        return str(p.with_name(name.split(".data-")[0]))
    return str(p)


def _state_latest(state: Path) -> str | None:
    """`model_checkpoint_path` from a `checkpoint` state file (text proto)."""
    import re

    try:
        text = state.read_text("utf-8", "replace")
    except OSError:
        return None
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
    return m.group(1) if m else None


def state_names_missing(path: str) -> str | None:
    """The checkpoint a directory's state file names when that checkpoint is absent."""
    p = Path(path)
    state = p / "checkpoint" if p.is_dir() else None
    if state is None or not state.is_file():
        return None
    latest = _state_latest(state)
    if latest is None:
        return None
    cand = latest if os.path.isabs(latest) else str(p / latest)
    return None if os.path.isfile(cand + ".index") else latest
