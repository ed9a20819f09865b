"""The options of each operation, as one immutable value per operation.

A command's flags become one frozen dataclass that travels unchanged from the CLI (or the API
caller) through every step; what a step learns on the way (warnings, the file's final name) goes
into the operation's report or context, never back into the options. The classes nest by what they
share: how to read a model (`SourceOptions`), how to compare two (`CompareOptions`), then what each
command adds (`VerifyOptions`, `ConvertOptions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from modeltool.errors import UsageError

Shape = tuple  # of int | None


@dataclass(frozen=True)
class SourceOptions:
    """How to read and run a model file: what the loaders and the source's runtime need."""

    custom_objects: str | None = None  # path of the user's module defining custom layers
    unsafe: bool = False  # allow running Python code stored in the file (Lambda layers)
    #: installed packages trusted like Keras besides keras_hub/keras_nlp/keras_cv/keras_rs (--trust)
    trust: tuple[str, ...] = ()
    weights_from: str | None = None  # weights for a JSON/YAML architecture
    config: str | None = None  # Keras architecture of a checkpoint's variables
    signature: str | None = None  # SavedModel signature
    inputs: str | None = None  # GraphDef / TF1 checkpoint boundary: "NAME[=SHAPE],..."
    outputs: str | None = None  # "NAME,..."
    #: GraphDef / TF1 checkpoint placeholders baked in as constants: {name: value}
    fixed_inputs: dict[str, float] = field(default_factory=dict)
    #: Keras 1/2 files: "writer" (tf_keras), "rebuild" (Keras 3), None = writer when installed
    reference_mode: str | None = None


@dataclass(frozen=True)
class CompareOptions(SourceOptions):
    """How two models are run side by side: inputs, tolerances, device."""

    atol: float | None = None
    rtol: float | None = None
    input_data: str | None = None  # .npz of inputs
    seed: int = 0
    batch: int = 2
    device: str = "cpu"  # onnxruntime: cpu | cuda | auto
    input_shapes: dict[str, Shape] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyOptions(CompareOptions):
    """`verify A B`: `quantized` picks the looser tolerances of a quantized target; None detects it.
    `localize` compares every intermediate tensor too (the first layer that diverges); `html` writes
    the visual report there."""

    quantized: str | None = None
    localize: bool = False
    html: str | None = None
    force: bool = False  # overwrite an existing --html file


@dataclass(frozen=True)
class ConvertOptions(CompareOptions):
    """`convert SRC DST`. Target-only fields are refused for targets that do not take them
    (`modeltool.targets`), never ignored."""

    to: str | None = None
    force: bool = False
    verify: bool = True
    #: when verification fails, compare every intermediate tensor too (`verify --localize`)
    localize: bool = False
    html: str | None = None  # the visual report of the verification (and localization)
    # ONNX
    opset: int | None = None
    via: str = "auto"  # direct (TensorFlow-free exporter) | tf (tf2onnx) | auto
    inputs_as_nchw: tuple[str, ...] = ()  # inputs given channels-first
    outputs_as_nchw: tuple[str, ...] = ()
    optimize: bool = False  # constant folding, dead nodes, fusions by a maintained optimizer
    keep_io_types: bool = True  # float16: inputs and outputs stay float32
    #: constants larger than this are kept out of tf2onnx and attached afterwards
    detach_bytes: int = 1 << 16
    #: weights from this size on go to `<name>.onnx.data` (protobuf cannot exceed 2 GB)
    external_data_bytes: int = (1 << 31) - (64 << 20)
    #: weights in external data whatever their size: "single" (one sidecar file) | "per-tensor"
    external_data: str | None = None
    # ONNX and TFLite
    quantize: str | None = None  # float16 | dynamic | int8
    calibration: str | None = None  # .npz for int8
    calibration_method: str | None = None  # ONNX int8: minmax (default) | entropy | percentile
    # TFLite
    allow_flex: bool = False


def option_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def narrowed(options: Any, cls: type) -> Any:
    """The fields of `options` that `cls` has, as a `cls` (a ConvertOptions read as SourceOptions)."""
    names = set(option_fields(cls))
    return cls(**{k: v for k, v in vars(options).items() if k in names})


def parse_fixed(values: tuple[str, ...] | list[str]) -> dict[str, float]:
    """`keep_prob=1.0` (repeatable) -> {"keep_prob": 1.0}."""
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            out[name.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UsageError(f"--fix-input {value!r}: expected NAME=VALUE (e.g. keep_prob=1.0)")
    return out


def parse_shapes(values: tuple[str, ...] | list[str]) -> dict[str, Shape]:
    """`NAME=1,224,224,3` (`?` keeps a dim dynamic, `()` is a scalar) -> {NAME: (1, 224, 224, 3)}. The older spelling
    `NAME:1,224,224,3` is still read when what follows the last `:` is a list of dims."""
    out: dict[str, Shape] = {}
    for value in values:
        name, dims = split_name_shape(value, "--input-shape")
        if dims is None:
            raise UsageError(f"--input-shape {value!r}: expected NAME=D1,D2,... (e.g. input_1=1,224,224,3)")
        out[name] = dims
    return out


_DIMS = re.compile(r"^\s*(\?|-1|None|\d+)(\s*[,x]\s*(\?|-1|None|\d+))*\s*$")


def split_name_shape(value: str, flag: str) -> tuple[str, Shape | None]:
    """`name=1,784` or `name=1x784` -> (name, (1, 784)); `name` -> (name, None). A TensorFlow
    tensor name may hold `:` (`keep_prob:0`), so `=` separates the shape; `name:1,784` (a shape
    after the last colon) is accepted too, while `name:0` stays a tensor name."""
    if "=" in value:
        name, _, dims = value.rpartition("=")
        if dims.strip() in ("()", "scalar"):
            return name.strip(), ()
        if not dims.strip():
            raise UsageError(f"{flag} {value!r}: nothing after '='; give the shape (x=1,784) or () for a scalar")
    else:
        head, sep, tail = value.rpartition(":")
        if sep and head and _DIMS.match(tail) and ("," in tail or "x" in tail or "?" in tail):
            name, dims = head, tail
        else:
            return value.strip(), None
    if not name.strip() or not _DIMS.match(dims):
        raise UsageError(f"{flag} {value!r}: expected NAME=D1,D2,... with integers or ? (e.g. x=1,784)")
    parts = re.split(r"\s*[,x]\s*", dims.strip())
    return name.strip(), tuple(None if d in ("?", "-1", "None") else int(d) for d in parts)
