"""Which models a batch finds (by content, folders as one model) and what a manifest says, without
running any conversion."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from modeltool.batch.jobs import artifact_path, make_jobs, options_from_json
from modeltool.batch.manifest import discover_models, load_manifest, model_id, parse_size, parse_targets
from modeltool.errors import UsageError
from tests.conftest import FIXTURES


@pytest.fixture()
def zoo(tmp_path: Path) -> Path:
    """A folder as users have them: models in sub-folders, a SavedModel and a checkpoint folder, a renamed
    file, weights-only files and architectures, notes and data that are no model, and a hidden folder."""
    root = tmp_path / "zoo"
    (root / "vision").mkdir(parents=True)
    (root / ".trash").mkdir()
    shutil.copy(FIXTURES / "keras3/conv_bn.keras", root / "vision/conv_bn.keras")
    shutil.copy(FIXTURES / "keras3/conv_bn.h5", root / "vision/conv_bn.h5")
    shutil.copy(FIXTURES / "keras3/sequential_mlp.keras", root / "renamed.bin")  # detected by content
    shutil.copytree(FIXTURES / "tf/keras3_export", root / "vision/exported")
    shutil.copytree(FIXTURES / "tf/keras3_ckpt", root / "ckpt")
    shutil.copy(FIXTURES / "keras3/conv_bn.weights.h5", root / "vision/conv_bn.weights.h5")
    shutil.copy(FIXTURES / "keras3/conv_bn.json", root / "vision/conv_bn.json")
    shutil.copy(FIXTURES / "graphs/conv_bn.onnx", root / "conv_bn.onnx")
    shutil.copy(FIXTURES / "keras3/conv_bn.keras", root / ".trash/old.keras")
    (root / "README.md").write_text("# my models\n")
    (root / "vision/inputs.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return root


def test_models_are_found_by_content_and_folders_are_one_model(zoo: Path) -> None:
    entries, skipped = discover_models([str(zoo)], ("onnx",))
    assert [e.id for e in entries] == ["zoo/ckpt", "zoo/renamed.bin", "zoo/vision/conv_bn.h5",
                                       "zoo/vision/conv_bn.keras", "zoo/vision/exported"]  # fmt: skip
    assert all(os.path.isabs(e.path) and e.targets == ("onnx",) for e in entries)
    assert sorted((Path(s.path).name, s.reason.split(" (")[0]) for s in skipped) == [
        ("conv_bn.json", "architecture only"), ("conv_bn.onnx", "already onnx: not converted to onnx"),
        ("conv_bn.weights.h5", "weights only")]  # fmt: skip
    # a file already in one target's format still goes to the others
    entries, _ = discover_models([str(zoo / "conv_bn.onnx")], ("onnx", "tflite"))
    assert [(e.id, e.targets) for e in entries] == [("conv_bn.onnx", ("tflite",))]


def test_the_output_folder_inside_the_zoo_is_not_taken_for_models(zoo: Path) -> None:
    (zoo / "out/conv_bn.keras").mkdir(parents=True)
    shutil.copy(FIXTURES / "keras3/conv_bn.keras", zoo / "out/conv_bn.keras/converted.keras")
    entries, _ = discover_models([str(zoo)], ("onnx",), exclude=(str(zoo / "out"),))
    assert not any("out/" in e.id for e in entries)


def test_a_path_named_explicitly_is_a_model_even_when_it_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    entries, skipped = discover_models([str(tmp_path / "notes.txt"), str(FIXTURES / "tf/keras3_export")], ("onnx",))
    assert [e.id for e in entries] == ["notes.txt", "keras3_export"] and skipped == []


def test_two_models_with_one_name_are_told_apart(tmp_path: Path) -> None:
    entries, _ = discover_models(
        [
            str(FIXTURES / "keras3/conv_bn.keras"),
            str(FIXTURES / "keras3/conv_bn.keras"),
            str(FIXTURES / "keras2/conv_bn.h5"),
            str(FIXTURES / "keras3/conv_bn.h5"),
        ],
        ("onnx",),
    )
    assert [e.id for e in entries] == ["conv_bn.keras", "conv_bn.h5", "conv_bn.h5~2"]


def test_manifest_targets_options_and_limits(tmp_path: Path) -> None:
    (tmp_path / "layers.py").write_text("")
    (tmp_path / "models.yaml").write_text(f"""
targets: [onnx, tflite]
defaults: {{batch: 1, seed: 3}}
timeout: 100
models:
  - path: {FIXTURES / "keras3/conv_bn.keras"}
    name: conv
    input-shape: {{pixels: "1,16,16,3"}}
    timeout: 5
  - path: {FIXTURES / "keras3/custom_layer.keras"}
    targets: tflite
    custom_objects: layers.py
    quantize: float16
    max_memory: 1.5G
    no_verify: true
""")
    entries, _ = load_manifest(str(tmp_path / "models.yaml"), ("savedmodel",), {"atol": 0.01, "batch": 4})
    conv, custom = entries
    assert conv.id == "conv" and conv.targets == ("onnx", "tflite") and conv.timeout == 5 and conv.max_memory is None
    assert conv.options == {"atol": 0.01, "batch": 1, "seed": 3, "input_shapes": {"pixels": [1, 16, 16, 3]}}
    assert custom.id == "custom_layer.keras" and custom.targets == ("tflite",) and custom.timeout == 100
    assert custom.max_memory == int(1.5 * 2**30)
    assert custom.options == {"atol": 0.01, "batch": 1, "seed": 3, "custom_objects": str(tmp_path / "layers.py"),
                              "quantize": "float16", "verify": False}  # fmt: skip
    jobs = make_jobs(entries, timeout=60, max_memory=2**30)
    assert [(j.id, j.timeout, j.max_memory) for j in jobs] == [
        ("conv -> onnx", 5, 2**30), ("conv -> tflite", 5, 2**30),
        ("custom_layer.keras -> tflite", 100, int(1.5 * 2**30))]  # fmt: skip
    options = jobs[0].convert_options()
    assert options.input_shapes == {"pixels": (1, 16, 16, 3)} and options.to == "onnx" and options.force


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(FIXTURES / "keras3/conv_bn.keras", tmp_path / "sub/m.keras")
    (tmp_path / "sub/models.yaml").write_text("- m.keras\n- path: missing.keras\n")
    entries, _ = load_manifest(str(tmp_path / "sub/models.yaml"), ("onnx",))
    assert [(e.id, e.path) for e in entries] == [
        ("m.keras", str(tmp_path / "sub/m.keras")),
        ("missing.keras", str(tmp_path / "sub/missing.keras")),
    ]


@pytest.mark.parametrize("text,message", [
    ("models: [{path: a.keras, colour: red}]", "unknown key 'colour'"),
    ("models: [{name: x}]", "needs a `path`"),
    ("models: [{path: a.keras, targets: [onnx, png]}]", "unknown target"),
    ("models: [{path: a.keras}]", "no targets"),
    ("models: [{path: a.keras, timeout: -1}]", "must be positive"),
    ("models: [{path: a.keras, max_memory: lots}]", "expected a size"),
    ("modles: []", "unknown top-level key"),
    ("{ not yaml", "not a valid YAML"),
])  # fmt: skip
def test_a_bad_manifest_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        load_manifest(str(tmp_path / "m.yaml"), () if message == "no targets" else ("onnx",))


def test_sizes_targets_ids_and_artifact_names() -> None:
    assert parse_size("512M") == 512 << 20 and parse_size("2GB") == 2 << 30 and parse_size("1000") == 1000
    assert parse_targets("onnx, tflite,saved_model,onnx") == ("onnx", "tflite", "savedmodel")
    assert model_id("../a b/./c.keras") == "a_b/c.keras"
    assert artifact_path("zoo/conv_bn.keras", "onnx") == "zoo/conv_bn.keras/conv_bn.onnx"
    assert artifact_path("exported", "savedmodel") == "exported/exported_savedmodel"
    assert artifact_path("m.h5", "weights.h5") == "m.h5/m.weights.h5"
    assert options_from_json({"inputs_as_nchw": ["x"]}).inputs_as_nchw == ("x",)


def test_a_zoo_inside_the_output_folder_is_refused(zoo: Path) -> None:
    with pytest.raises(UsageError, match="lies inside --out"):
        discover_models([str(zoo / "vision")], ("onnx",), exclude=(str(zoo),))
