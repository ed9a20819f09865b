"""What one declaration of a layer class says, and the shape helpers the family modules share.

A layer class is declared once, in the module of its family (`core`, `conv`, `recurrent`, ...): the
classes it covers, the function mirroring Keras's `compute_output_shape` and `build` (output shapes
and the weights it creates: role, shape, where Keras 3 stores them), its two lowerings (the direct
ONNX converter and the direct TFLite lowering, each walked over the same IR with the same weight
roles), and whether it passes Keras's mask on. `table.LAYERS` collects the families into one
explicit table; the loaders (weight roles), `inspect` (shapes, counts) and the direct route
(converter, masks) all read that table, so a layer added in one place is known to all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Shape = tuple

#: where the direct route's converters live; a declaration names one as "module:function" under it
CONVERTER_PACKAGE = "modeltool.exporters.direct."
#: where the direct TFLite route's lowerings live, named the same way
LOWERING_PACKAGE = "modeltool.exporters.litert."


@dataclass
class WeightSpec:
    """A weight a layer creates. `k3` is where Keras 3 stores it: (sub-object path, var index)."""

    role: str
    shape: tuple
    trainable: bool = True
    k3: tuple[str, int] = ("", 0)
    prefix: str = ""  # Keras path between layer and role ("forward_lstm/lstm_cell")

    @property
    def size(self) -> int | None:
        if any(d is None for d in self.shape):
            return None
        return int(math.prod(self.shape))


@dataclass
class LayerInfo:
    output_shapes: list[Shape | None]
    weights: list[WeightSpec] = field(default_factory=list)


Infer = Callable[[dict[str, Any], list], LayerInfo]


@dataclass(frozen=True)
class Declaration:
    """Everything modeltool knows about one layer class. `infer` is None where shapes come from
    elsewhere (Keras operations recorded as layers); `onnx` is "module:function" under
    `modeltool.exporters.direct` (a string: the converters import onnx, the loaders must not);
    `tflite` is "module:function" under `modeltool.exporters.litert`."""

    cls: str
    family: str
    infer: Infer | None = None
    onnx: str | None = None
    mask: bool = False
    tflite: str | None = None

    @property
    def converter_path(self) -> str | None:
        return CONVERTER_PACKAGE + self.onnx if self.onnx else None

    @property
    def lowering_path(self) -> str | None:
        return LOWERING_PACKAGE + self.tflite if self.tflite else None


class Family:
    """The declarations of one family module, in the order written."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.declarations: list[Declaration] = []

    def declare(self, *classes: str, onnx: str | None = None, mask: bool = False,
                tflite: str | None = None) -> Callable[[Infer], Infer]:  # fmt: skip
        """Decorator: `classes` are sized by the function; `onnx` and `tflite` write them; `mask`
        passes masks on."""

        def deco(fn: Infer) -> Infer:
            self.add(*classes, infer=fn, onnx=onnx, mask=mask, tflite=tflite)
            return fn

        return deco

    def add(self, *classes: str, infer: Infer | None = None, onnx: str | None = None, mask: bool = False,
            tflite: str | None = None) -> None:  # fmt: skip
        for cls in classes:
            self.declarations.append(Declaration(cls, self.name, infer, onnx, mask, tflite))


#: the collected table, installed by `table` once every family is declared (wrappers size the layer
#: they wrap through it: a family module cannot import the table that imports it)
_TABLE: dict[str, Declaration] = {}


def install(table: dict[str, Declaration]) -> None:
    _TABLE.clear()
    _TABLE.update(table)


#: packages of trusted model libraries whose classes are declared as `<package>>Class` (a user's
#: own class of the same name elsewhere is not theirs)
LIBRARY_PACKAGES = ("keras_hub", "keras_nlp")


def table_key(cls: str, module: str | None = None) -> str:
    """The table key of a class as a config names it: `ops.<Class>` for a keras.ops operation
    recorded as a layer, `keras_hub>Class` for a model library's class, else the class name."""
    if module and (module.startswith("keras.src.ops") or module.startswith("keras.ops")):
        return f"ops.{cls}"
    top = (module or "").split(".")[0]
    if top in LIBRARY_PACKAGES:
        return f"keras_hub>{cls}"
    return cls


def infer(
    class_name: str, config: dict[str, Any], input_shapes: list[Shape | None], module: str | None = None
) -> LayerInfo | None:
    """Output shapes and weights of one layer call (`module`: where the config says the class
    lives); None for a class no declaration sizes."""
    decl = _TABLE.get(table_key(class_name, module))
    if decl is None or decl.infer is None:
        return None
    try:
        return decl.infer(config, input_shapes)
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        # A known class whose config or inputs we cannot follow: report unknown shapes, not a crash.
        return LayerInfo([None])


# ---------------------------------------------------------------- shape helpers


def first(shapes: list) -> Shape | None:
    return shapes[0] if shapes else None


def as_tuple(value: Any, n: int) -> tuple:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) == 1 and n > 1:
        return value * n
    return value


def channels_first(cfg: dict) -> bool:
    return cfg.get("data_format") == "channels_first"


def conv_len(length: int | None, k: int, s: int, padding: str, d: int = 1) -> int | None:
    if length is None:
        return None
    eff = (k - 1) * d + 1
    if padding in ("same", "causal"):
        return (length + s - 1) // s
    if padding == "full":
        return (length + eff - 1 + s - 1) // s
    return max((length - eff) // s + 1, 0)


def deconv_len(length, k, s, padding, out_pad, d=1):
    if length is None:
        return None
    k = k + (k - 1) * (d - 1)
    if out_pad is None:
        if padding == "valid":
            return length * s + max(k - s, 0)
        if padding == "full":
            return length * s - (s + k - 2)
        return length * s
    pad = {"same": k // 2, "valid": 0, "full": k - 1}[padding]
    return (length - 1) * s + k - 2 * pad + out_pad


def spatial_dims(shape: Shape, rank: int, cf: bool) -> tuple[list, Any]:
    """(spatial dims, channels) of an N-D input."""
    if cf:
        return list(shape[2 : 2 + rank]), shape[1]
    return list(shape[1 : 1 + rank]), shape[-1]


def assemble(batch, spatial: list, channels, cf: bool) -> Shape:
    return (batch, channels, *spatial) if cf else (batch, *spatial, channels)


def axes_of(axis: Any, rank: int) -> list[int]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return [a % rank for a in axes]
