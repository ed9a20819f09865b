"""Keras 3 `.keras` archives, read from the zip in memory.

Entries are looked up by their fixed names (`config.json`, `metadata.json`, `model.weights.h5`);
nothing is ever extracted to disk, so hostile entry names such as `../../x` never touch the file
system. The weights file is opened inside the zip on demand (the archive stores it uncompressed).

Members that are not what Keras writes are named, not silently skipped: a path leaving the archive,
or an `.npz` (Keras's `weights_format="npz"` variant, and a published exploit against Keras 3.0)
whose arrays are pickled Python objects. Only the `.npy` headers of an `.npz` are read, never its
data, so nothing is unpickled; the findings become warnings and `extra["unsafe_members"]`, which
`keras.safety.check_archive_members` refuses to build a model from.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from contextlib import contextmanager
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import MAX_CONFIG_BYTES, Format
from modeltool.ir import Graph, Model, Weight
from modeltool.keras.safety import unsafe_member_name
from modeltool.keras.weights import k3_weights
from modeltool.loaders.keras_common import keras_model, training_summary

WEIGHTS_ENTRY = "model.weights.h5"
#: `.npy` members of an `.npz` whose headers are checked before giving up (bounded work)
MAX_NPZ_MEMBERS = 100_000
#: what zipfile and numpy's header parser raise on a damaged or hostile `.npz` (RuntimeError: encrypted,
#: NotImplementedError: unknown compression, SyntaxError/ValueError: a header that is no dict literal)
NPZ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    SyntaxError,
    RuntimeError,
    NotImplementedError,
)


def _read_json(path: str, zf: zipfile.ZipFile, name: str) -> Any:
    info = zf.getinfo(name)
    if info.file_size > MAX_CONFIG_BYTES:
        raise LoadError(f"{path}: {name} is {info.file_size} bytes, over the {MAX_CONFIG_BYTES}-byte limit")
    try:
        return json.loads(zf.read(name).decode("utf-8"))
    except RecursionError as exc:
        raise LoadError(f"{path}: {name} nests too deeply to be a model config") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: {name} in the archive is not valid JSON ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncated members
        raise LoadError(f"{path}: cannot read {name} from the archive ({exc})") from exc


class _MemberFile(io.RawIOBase):
    """A stored (uncompressed) zip member as a seekable file, read with pread at its offset.

    h5py reads HDF5 through many small seeks; zipfile's own member object re-buffers and
    CRC-checks each read and is about 10x slower for that access pattern."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._offset, self._size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = max(0, min(len(buf), self._size - self._pos))
        data = os.pread(self._fd, n, self._offset + self._pos) if n else b""
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _stored_member(path: str, info: zipfile.ZipInfo) -> _MemberFile | None:
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    offset = info.header_offset + 30 + name_len + extra_len
    if offset + info.file_size > os.path.getsize(path):
        return None
    return _MemberFile(path, offset, info.file_size)


def weights_opener(path: str):
    """Opens the archive's `model.weights.h5` for reading (in place when the entry is stored uncompressed)."""
    import h5py

    @contextmanager
    def open_weights():
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(WEIGHTS_ENTRY)
            member = _stored_member(path, info)
            with member if member is not None else zf.open(info) as fh, h5py.File(fh, "r") as f:
                yield f

    return open_weights


def unsafe_members(path: str, zf: zipfile.ZipFile) -> list[dict[str, str]]:
    """`{member, reason}` for every member no Keras writes: names leaving the archive and `.npz`
    members holding pickled objects (found from the `.npy` headers alone) or unreadable as `.npz`."""
    found = []
    for info in zf.infolist():
        reason = _member_problem(path, zf, info)
        if reason is not None:
            found.append({"member": info.filename, "reason": reason})
    return found


def _member_problem(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    why = unsafe_member_name(info.filename)
    if why is not None:
        return f"{why}, a zip-slip name that no Keras writes"
    if not info.filename.lower().endswith(".npz"):
        return None
    try:
        pickled = _pickled_arrays(path, zf, info)
    except NPZ_ERRORS as exc:
        return f"is not a readable .npz ({type(exc).__name__})"
    if not pickled:
        return None
    shown = ", ".join(pickled[:4]) + (" ..." if len(pickled) > 4 else "")
    return f"holds pickled Python objects (object arrays: {shown}) that would run code when unpickled"


def _pickled_arrays(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> list[str]:
    """Names of the object-dtype (pickled) arrays in an `.npz` member, from their `.npy` headers only
    (the shape/dtype text before the data; `np.load` is never called)."""
    from numpy.lib import format as npy

    member = _stored_member(path, info)
    pickled = []
    with member if member is not None else zf.open(info) as fh, zipfile.ZipFile(fh) as npz:
        for inner in npz.infolist()[:MAX_NPZ_MEMBERS]:
            with npz.open(inner) as f:
                if f.read(len(npy.MAGIC_PREFIX)) != npy.MAGIC_PREFIX:
                    continue  # numpy hands a non-.npy member back as raw bytes: nothing to unpickle
                f.seek(0)
                major, _ = npy.read_magic(f)
                read_header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
                _, _, dtype = read_header(f)
            if dtype.hasobject:
                pickled.append(inner.filename)
    return pickled


def load(path: str, **options: Any) -> Model:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"{path}: corrupted zip archive ({exc})") from exc
    with zf:
        names = set(zf.namelist())
        config = _read_json(path, zf, "config.json")
        meta = _read_json(path, zf, "metadata.json") if "metadata.json" in names else {}
        unsafe = unsafe_members(path, zf)
    writer = {"keras_version": meta.get("keras_version"), "date_saved": meta.get("date_saved")}
    compile_cfg = config.get("compile_config") if isinstance(config, dict) else None
    training = None
    if compile_cfg:
        training = training_summary(
            compile_cfg.get("optimizer"), compile_cfg.get("loss"), compile_cfg.get("metrics"), compile_cfg
        )

    def weights(graph: Graph | None) -> list[Weight]:
        if WEIGHTS_ENTRY not in names:
            return []
        opener = weights_opener(path)
        try:
            with opener() as f:
                return k3_weights(opener, f, graph)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise LoadError(f"{path}: {WEIGHTS_ENTRY} in the archive is unreadable ({exc})") from exc

    extra: dict[str, Any] = {"archive_entries": sorted(names)}
    if unsafe:
        extra["unsafe_members"] = unsafe
    model = keras_model(path, Format.KERAS_V3, config, writer, training, weights, extra)
    model.warnings += [f"archive member {u['member']!r} {u['reason']}; not read" for u in unsafe]
    return model
