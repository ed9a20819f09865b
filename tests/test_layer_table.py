"""The one table of layer classes (`modeltool.keras.layers.table.LAYERS`): every entry resolves,
and the readers of the table (the config reader, the direct route's converter table and mask rule)
see exactly what the declarations say."""

from __future__ import annotations

import importlib

import pytest

from modeltool.exporters.direct import registry
from modeltool.keras import layers as L
from modeltool.keras.layers.spec import CONVERTER_PACKAGE, LayerInfo

ENTRIES = sorted(L.LAYERS.items())


@pytest.mark.parametrize(("cls", "decl"), ENTRIES, ids=[c for c, _ in ENTRIES])
def test_every_entry_imports(cls: str, decl: L.Declaration) -> None:
    """Each declared converter is a function that exists; each sizing function is callable."""
    assert decl.cls == cls
    assert decl.infer is not None or decl.onnx is not None, f"{cls}: declared with nothing"
    if decl.onnx is not None:
        module, func = decl.converter_path.split(":")  # type: ignore[union-attr]
        assert module.startswith(CONVERTER_PACKAGE)
        assert callable(getattr(importlib.import_module(module), func))
    if decl.infer is not None:
        assert callable(decl.infer)


def test_the_direct_route_reads_the_declarations() -> None:
    assert registry.CONVERTERS == {c: d.converter_path for c, d in L.LAYERS.items() if d.onnx}
    assert registry.MASK_PROPAGATING == {c for c, d in L.LAYERS.items() if d.mask}
    assert (
        registry.converter("Dense", "keras.layers") is importlib.import_module("modeltool.exporters.direct.core").dense
    )


def test_every_keras_layer_the_route_writes_is_sized() -> None:
    """A layer the direct route writes also has its shapes and weight roles declared (without them its
    weights would arrive as var0/var1), except Keras operations and the two layers read by order."""
    unsized = {c for c, d in L.LAYERS.items() if d.onnx and d.infer is None}
    assert {c for c in unsized if not c.startswith("ops.")} == {"LayerScale", "CustomScaleLayer"}


def test_a_family_declares_each_class_once() -> None:
    from modeltool.keras.layers.spec import Family
    from modeltool.keras.layers.table import collect

    a, b = Family("a"), Family("b")
    a.add("Dense", onnx="core:dense")
    b.add("Dense", onnx="core:dense")
    with pytest.raises(RuntimeError, match="declared twice"):
        collect((a, b))


def test_sizing_goes_through_the_table_for_wrapped_layers() -> None:
    cfg = {"layer": {"class_name": "Dense", "config": {"units": 3, "name": "d"}}}
    info = L.infer("TimeDistributed", cfg, [(None, 5, 2)])
    assert isinstance(info, LayerInfo)
    assert info.output_shapes == [(None, 5, 3)]
    assert [(w.role, w.shape) for w in info.weights] == [("kernel", (2, 3)), ("bias", (3,))]
    assert L.infer("NoSuchLayer", {}, [(None, 2)]) is None
