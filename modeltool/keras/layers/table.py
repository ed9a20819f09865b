"""The one table of layer classes: every family module's declarations, collected explicitly.

`infer(cls, config, input_shapes)` (from `spec`) sizes one layer call through this table.

`LAYERS[cls]` is the `Declaration` of a class (its Keras 3 name; Keras 1/2 names are normalized by
the loader, a few aliases are sized too). The direct ONNX route's converter table, the mask
behaviour it follows and the config reader's shapes and weight roles are all read from here.
"""

from __future__ import annotations

from modeltool.keras.layers import (
    activations,
    attention,
    conv,
    core,
    hub,
    merge,
    normalization,
    pooling,
    recurrent,
    spatial,
    wrappers,
)
from modeltool.keras.layers.spec import Declaration, Family, install, table_key

FAMILIES: tuple[Family, ...] = (
    core.family, activations.family, normalization.family, conv.family, pooling.family, spatial.family,
    merge.family, recurrent.family, wrappers.family, attention.family, hub.family,
)  # fmt: skip


def collect(families: tuple[Family, ...]) -> dict[str, Declaration]:
    table: dict[str, Declaration] = {}
    for fam in families:
        for decl in fam.declarations:
            if decl.cls in table:
                raise RuntimeError(f"layer class {decl.cls!r} declared twice ({table[decl.cls].family}, {fam.name})")
            table[decl.cls] = decl
    return table


LAYERS: dict[str, Declaration] = collect(FAMILIES)
install(LAYERS)


def sized(class_name: str, module: str | None = None) -> bool:
    """True when the config reader computes this class's shapes and weights."""
    decl = LAYERS.get(table_key(class_name, module))
    return decl is not None and decl.infer is not None


def converters() -> dict[str, str]:
    """{class: "module:function"} of every class the direct ONNX route writes."""
    return {cls: d.converter_path for cls, d in LAYERS.items() if d.converter_path}


def lowerings() -> dict[str, str]:
    """{class: "module:function"} of every class the direct TFLite route writes."""
    return {cls: d.lowering_path for cls, d in LAYERS.items() if d.lowering_path}


def lowered(class_name: str, module: str | None = None) -> bool:
    """True when the direct TFLite route has a lowering for this class (its configuration may still
    ask for something the lowering refuses, found when it is written)."""
    decl = LAYERS.get(table_key(class_name, module))
    return decl is not None and decl.lowering_path is not None


def mask_propagating() -> frozenset[str]:
    """Classes that pass the mask Keras propagates on to what follows (others drop it, as in Keras)."""
    return frozenset(cls for cls, d in LAYERS.items() if d.mask)
