"""Every fixture model in every format it was saved in: modeltool's figures equal Keras's own.

The expected values come from `fixtures/manifest.json`, written by Keras itself
(`count_params()`, layer output shapes) when `fixtures/make_fixtures.py` generated the files.
"""

from __future__ import annotations

import re

import pytest

import modeltool
from tests.conftest import fixture_files, manifest

MANIFEST = manifest()
ARCH_KINDS = ("keras", "h5", "json", "yaml")
CASES = [c for c in fixture_files(ARCH_KINDS) if c[0].startswith("keras")]
WEIGHT_CASES = [c for c in fixture_files(("weights_h5",))]


def _known(entry: dict) -> bool:
    return entry["inputs"] is not None


@pytest.mark.parametrize("mid,kind,path", CASES, ids=[f"{m}-{k}" for m, k, _ in CASES])
def test_architecture_matches_keras(mid: str, kind: str, path) -> None:
    entry = MANIFEST[mid]
    model = modeltool.load(path)
    if not _known(entry):  # subclassed: no architecture in the file
        assert model.warnings and "subclassed" in model.warnings[0]
        assert model.params.total == entry["params"]["total"]
        return
    assert [n.name for n in model.layers] == [layer["name"] for layer in entry["layers"]]
    assert [list(t.shape) for t in model.inputs] == [t["shape"] for t in entry["inputs"]]
    assert [t.name for t in model.inputs] == [t["name"] for t in entry["inputs"]]
    # Keras 2 files record no shapes: what follows a custom layer cannot be known without running it.
    after_custom = mid == "keras2/custom_layer"
    for got, want in zip(model.outputs, entry["outputs"]):
        assert (got.shape is None and after_custom) or list(got.shape) == want["shape"]
    for node, expected in zip(model.layers, entry["layers"]):
        if node.output_shapes == [None] and "custom" in node.flags:
            continue  # a custom layer's output shape is unknown without running its code
        if after_custom and node.output_shapes == [None]:
            assert node.name == "post"
        elif expected["output_shape"] is not None:
            got = node.output_shapes[0] if len(node.output_shapes) == 1 else node.output_shapes
            got = list(got) if isinstance(got, tuple) else [list(s) for s in got]
            assert got == expected["output_shape"], node.name
        custom = expected["class_name"] == "ScaledDense"
        if kind in ("json", "yaml") and custom:
            assert node.params is None and "custom" in node.flags  # never a guess
        else:
            assert node.params == expected["params"], node.name
    params = model.params
    has_custom = any(layer["class_name"] == "ScaledDense" for layer in entry["layers"])
    if kind in ("json", "yaml") and has_custom:
        assert params.total is None
    else:
        assert params.to_dict() | {"source": None} == entry["params"] | {"source": None}


@pytest.mark.parametrize("mid,kind,path", WEIGHT_CASES, ids=[f"{m}-{k}" for m, k, _ in WEIGHT_CASES])
def test_weights_only_files(mid: str, kind: str, path) -> None:
    entry = MANIFEST[mid]
    model = modeltool.load(path)
    assert model.graph is None
    assert model.params.total == entry["params"]["total"]
    top = {layer["name"] for layer in entry["layers"]}
    if _known(entry):
        assert {w.layer.split("/")[0] for w in model.weights} <= top
    for w in model.weights:
        assert w.value().shape == tuple(w.shape)


@pytest.mark.parametrize("mid", sorted(m for m in MANIFEST if m.startswith("keras3/") and MANIFEST[m]["inputs"]))
def test_keras3_weights_file_with_architecture(mid: str) -> None:
    """`.weights.h5` stores `layers/<class>/vars/N`; the names and roles come from the architecture."""
    from modeltool.loaders.keras_h5 import read_weights_file

    arch = modeltool.load(f"fixtures/{MANIFEST[mid]['files']['json']}")
    weights = read_weights_file(f"fixtures/{MANIFEST[mid]['files']['weights_h5']}", arch.graph)
    from_keras = {w.name: w for w in modeltool.load(f"fixtures/{MANIFEST[mid]['files']['h5']}").weights}
    assert len(weights) == len(from_keras)
    for w in weights:
        legacy = from_keras.get(w.name)  # Keras 3 writes the same path names into legacy .h5
        if w.layer == "scaled":  # custom layer: no known roles, stored order kept
            assert re.fullmatch(r"var\d+", w.role)
            legacy = next(v for v in from_keras.values() if v.layer == "scaled" and v.shape == w.shape)
        assert (legacy.shape, legacy.role if w.layer != "scaled" else w.role, legacy.trainable) == (
            w.shape,
            w.role,
            w.trainable,
        )
        assert (legacy.value() == w.value()).all()
