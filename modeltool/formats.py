"""What is this file? Format detection by content; the extension is only a hint.

Users rename files (`model.keras` that is really HDF5 is in the wild), so every decision here reads
the first bytes or the directory layout. The answer is a `Format`; `describe()` gives the text shown
to people, and `SUPPORTED` lists what the error message names when nothing matches.
"""

from __future__ import annotations

import enum
import json
import os
import re
import zipfile
from pathlib import Path

from modeltool.errors import FormatError, LoadError
from modeltool.wire import fields

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
TFLITE_IDENT = b"TFL3"


class Format(str, enum.Enum):
    KERAS_H5 = "keras_h5"  # legacy full model (model_config attribute), Keras 1/2/3
    KERAS_H5_WEIGHTS = "keras_h5_weights"  # Keras 1/2 save_weights layout (layer_names at the root)
    KERAS3_WEIGHTS = "keras3_weights"  # Keras 3 .weights.h5 (layers/<attr>/vars/N)
    KERAS_V3 = "keras_v3"  # Keras 3 .keras zip archive
    KERAS_JSON = "keras_json"
    KERAS_YAML = "keras_yaml"
    ONNX = "onnx"
    TFLITE = "tflite"
    SAVEDMODEL = "savedmodel"
    CHECKPOINT = "checkpoint"
    GRAPHDEF = "graphdef"

    def __str__(self) -> str:  # the value in text and f-strings, as in JSON
        return self.value


DESCRIPTIONS = {
    Format.KERAS_H5: "Keras HDF5 model (legacy .h5)",
    Format.KERAS_H5_WEIGHTS: "Keras 1/2 HDF5 weights (save_weights)",
    Format.KERAS3_WEIGHTS: "Keras 3 weights (.weights.h5)",
    Format.KERAS_V3: "Keras 3 archive (.keras)",
    Format.KERAS_JSON: "Keras architecture config (JSON)",
    Format.KERAS_YAML: "Keras architecture config (YAML)",
    Format.ONNX: "ONNX model",
    Format.TFLITE: "TensorFlow Lite flatbuffer",
    Format.SAVEDMODEL: "TensorFlow SavedModel directory",
    Format.CHECKPOINT: "TensorFlow checkpoint",
    Format.GRAPHDEF: "TensorFlow frozen GraphDef",
}

SUPPORTED = (
    "Keras .h5/.hdf5 (full model or weights), .keras, .weights.h5, JSON/YAML configs, "
    "ONNX, TFLite, SavedModel directories, TF checkpoints, frozen GraphDef .pb"
)

#: beyond this size a "config" file is not parsed as JSON/YAML (bounded resources)
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: what a text file that is no Keras config is told (with SUPPORTED); the text loaders say it too
NOT_A_MODEL_TEXT = "not a model file (text that is not a Keras JSON/YAML config)"
#: a top-level key of a Keras YAML config (`to_yaml` writes `backend`, `class_name`, `config`, ...)
YAML_KERAS_KEY = re.compile(r"^(class_name|config)[ \t]*:", re.MULTILINE)
#: bytes no text file holds (C0 controls other than tab, newlines and form feed); binary protobufs do
BINARY_BYTES = frozenset(range(32)) - {0x09, 0x0A, 0x0C, 0x0D}


def describe(fmt: Format) -> str:
    return DESCRIPTIONS[fmt]


def detect(path: str | os.PathLike) -> Format:
    """Return the format of `path`, reading as little of it as possible.

    Raises FormatError for missing, empty and unrecognised files, LoadError for a file whose
    container (HDF5, zip) is broken.
    """
    p = Path(path)
    if not p.exists():
        if p.with_name(p.name + ".index").is_file():  # a checkpoint prefix names no file itself
            return Format.CHECKPOINT
        raise FormatError(f"{p}: no such file or directory")
    if p.is_dir():
        return _detect_dir(p)
    if _is_checkpoint_part(p):
        return Format.CHECKPOINT
    size = p.stat().st_size
    if size == 0:
        raise FormatError(f"{p}: file is empty")
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(HDF5_MAGIC) or _hdf5_with_userblock(p, size):
        return _detect_hdf5(p)
    if head.startswith(ZIP_MAGIC):
        return _detect_zip(p)
    if len(head) >= 8 and head[4:8] == TFLITE_IDENT:
        return Format.TFLITE
    text_fmt = _detect_text(p, head, size)
    if text_fmt is not None:
        return text_fmt
    if p.name == "saved_model.pb" or (p.suffix == ".pb" and _is_saved_model_pb(p)):
        raise FormatError(f"{p}: this is a SavedModel's saved_model.pb; pass the directory that holds it")
    text = _head_text(head, size)
    if text is not None and text.startswith("model_checkpoint_path:"):
        raise FormatError(f"{p}: this is a TF checkpoint's state file; pass the directory that holds it or the prefix")
    if text is not None and p.suffix.lower() not in (".pb", ".pbtxt"):
        raise FormatError(f"{p}: {NOT_A_MODEL_TEXT}; supported: {SUPPORTED}")
    proto = _detect_protobuf(head)
    if proto is not None:
        return proto
    if p.suffix.lower() in (".pb", ".pbtxt"):
        raise FormatError(f"{p}: not a GraphDef (neither a binary nor a text TensorFlow graph protobuf)")
    raise FormatError(f"{p}: not a recognised model file (supported: {SUPPORTED})")


def _detect_dir(p: Path) -> Format:
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
        return Format.SAVEDMODEL
    if (p / "checkpoint").is_file() or any(p.glob("*.index")):
        return Format.CHECKPOINT
    raise FormatError(f"{p}: directory holds neither a SavedModel (saved_model.pb) nor a checkpoint")


def _is_checkpoint_part(p: Path) -> bool:
    """A checkpoint prefix ("ckpt-5"), its index, or a data shard."""
    name = p.name
    if name.endswith(".index") or ".data-" in name:
        return True
    return p.with_name(name + ".index").is_file()


def _hdf5_with_userblock(p: Path, size: int) -> bool:
    """HDF5 allows a user block: the signature may sit at 512, 1024, 2048, ..."""
    offset = 512
    with open(p, "rb") as fh:
        while offset < min(size, 1 << 20):
            fh.seek(offset)
            if fh.read(8) == HDF5_MAGIC:
                return True
            offset *= 2
    return False


def _detect_hdf5(p: Path) -> Format:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            if "model_config" in f.attrs:
                return Format.KERAS_H5
            if "layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs):
                return Format.KERAS_H5_WEIGHTS
            if "layers" in f or "vars" in f:
                return Format.KERAS3_WEIGHTS
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's errors on a damaged file
        raise LoadError(f"{p}: truncated or corrupted HDF5 file ({_short(exc)})") from exc
    raise FormatError(f"{p}: HDF5 file holds no Keras model or weights (no model_config, layer_names or layers/)")


def _detect_zip(p: Path) -> Format:
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(f"{p}: truncated or corrupted zip archive ({_short(exc)})") from exc
    if "config.json" in names:
        return Format.KERAS_V3
    raise FormatError(f"{p}: zip archive without config.json is not a Keras 3 .keras file")


def _head_text(head: bytes, size: int) -> str | None:
    """The first bytes as text, or None when they are not UTF-8 text (binary control bytes)."""
    if BINARY_BYTES.intersection(head):
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        if size > len(head):  # a multi-byte character may be cut at the 4096-byte boundary
            try:
                return head[:-4].decode("utf-8")
            except UnicodeDecodeError:
                return None
        return None


def _detect_text(p: Path, head: bytes, size: int) -> Format | None:
    """JSON or YAML text that reads as a Keras config (a mapping with `class_name`/`config` at the
    top); GraphDef pbtxt is left to the proto check. Other text is no model (None)."""
    text = _head_text(head, size)
    if text is None:
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return None
    if stripped.startswith("node {") or stripped.startswith("node{"):
        return Format.GRAPHDEF
    if stripped[0] in "{[":
        if '"class_name"' in text or (size > len(head) and '"config"' in text):
            return Format.KERAS_JSON  # broken or not, the JSON loader reports precisely what is wrong
        return _keras_json_or_none(p) if size <= len(head) else None
    if YAML_KERAS_KEY.search(stripped):
        return Format.KERAS_YAML
    return None


def _keras_json_or_none(p: Path) -> Format | None:
    """KERAS_JSON for a (small) JSON mapping with Keras's top-level keys, else None (not a model)."""
    try:
        data = json.loads(p.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return Format.KERAS_JSON if isinstance(data, dict) and ("class_name" in data or "config" in data) else None


def _detect_protobuf(head: bytes) -> Format | None:
    """ONNX ModelProto starts with field 1 as a varint (ir_version); GraphDef with field 1 as a
    length-delimited NodeDef. Anything else is not a model we know."""
    if not head:
        return None
    tag = head[0]
    field, wire = tag >> 3, tag & 7
    if field == 1 and wire == 0:
        return Format.ONNX
    if field == 1 and wire == 2 and len(head) > 2:
        return Format.GRAPHDEF
    if field in (2, 3, 4, 5, 6, 7, 8) and wire in (0, 2) and head[:1] != b"{":
        # an ONNX file whose writer put producer_name (2) or graph (7) first
        return Format.ONNX if _looks_like_onnx(head) else None
    return None


def _is_saved_model_pb(p: Path) -> bool:
    """A SavedModel proto (schema version, then meta graphs with tags) under another name.

    Read with a few lines of protobuf wire format rather than the message classes in `tfgraph`, which
    sit above this module: field 2 (`meta_graphs`) holds a MetaGraphDef whose field 1
    (`meta_info_def`) holds `tags` (field 4) and whose field 2 is a `graph_def`. A GraphDef with a
    function library also parses as a SavedModel with protobuf (function return names read as tags);
    it starts with its nodes (field 1, length-delimited), which a SavedModel never does."""
    if p.stat().st_size > MAX_CONFIG_BYTES:
        return False
    data = p.read_bytes()
    try:
        top = list(fields(data))
        if not top or top[0][0] not in (1, 2) or (top[0][0] == 1 and top[0][1] != 0):
            return False
        for number, wire, value in top:
            if number == 2 and wire == 2:
                meta = dict((n, v) for n, w, v in fields(value) if w == 2)
                if 2 in meta and any(n == 4 for n, w, _ in fields(meta.get(1, b"")) if w == 2):
                    return True
    except ValueError:
        return False
    return False


def _looks_like_onnx(head: bytes) -> bool:
    return b"opset_import" in head or b"onnx" in head.lower() or b"pytorch" in head.lower()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
