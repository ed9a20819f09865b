"""`inspect` says things plainly: `--layer` without Python reprs, an index out of range with the
layer count, a text file that is no model named as such, and a weights file's trainable split
shown as the guess it is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, fixture_files, manifest, run_cli

WEIGHTS_ONLY = [(mid, path) for mid, kind, path in fixture_files(("weights_h5",))]


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------- --layer


def test_layer_text_has_no_python_reprs() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/sequential_mlp.keras", "--layer", "hidden")
    assert result.returncode == 0, result.stderr
    head = result.stdout.split("  config:")[0]
    assert "  inbound: features\n" in head
    assert "  outbound: dropout\n" in head
    assert "  output shape: (None, 32)\n" in head
    assert "[" not in head and "'" not in head


def test_shared_layer_calls_are_numbered() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/shared_layers.keras", "--layer", "shared_dense")
    assert result.returncode == 0, result.stderr
    head = result.stdout.split("  config:")[0]
    for line in ("  inbound (2 calls):", "    call 0: left", "    call 1: right", "  outbound: diff, prod",
                 "  output shapes (2 calls):", "    call 1: (None, 8)"):  # fmt: skip
        assert line in head.splitlines(), (line, head)
    left = run_cli("inspect", FIXTURES / "keras3/shared_layers.keras", "--layer", "left").stdout
    assert "  inbound: none" in left.splitlines()


def test_layer_json_keeps_its_structure() -> None:
    path = FIXTURES / "keras3/sequential_mlp.keras"
    data = json.loads(run_cli("inspect", path, "--layer", "hidden", "--json").stdout)
    assert data["inbound"] == [["features"]]
    assert data["outbound"] == ["dropout"]
    assert data["output_shapes"] == [[[None, 32]]]


@pytest.mark.parametrize("index", ["99", "-4"])
def test_layer_index_out_of_range(index: str) -> None:
    result = run_cli("inspect", FIXTURES / "keras3/sequential_mlp.keras", "--layer", index)
    line = _one_error_line(result)
    assert f"layer index {index} is out of range" in line and "3 top-level layers (indices 0 to 2)" in line


def test_layer_of_a_weights_file() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/conv_bn.weights.h5", "--layer", "0")
    assert "no layer architecture" in _one_error_line(result)


# ---------------------------------------------------------------- text that is no model


def test_readme_is_not_a_model_file() -> None:
    line = _one_error_line(run_cli("inspect", "README.md"))
    assert line.startswith("modeltool: error: README.md: not a model file (text that is not a Keras JSON/YAML config)")
    assert "supported: Keras .h5" in line


@pytest.mark.parametrize(
    "name,text",
    [("notes.txt", "class_name appears: in prose\n"), ("plain.yaml", "hello: world\n"), ("data.json", '{"a": 1}'),
     ("list.json", '[{"class_name": "Dense"}]'), ("list.yaml", "- class_name: x\n"),
     ("leading_newline.txt", "\nonnx\n"), ("quoted.txt", '"onnx" said the README\n')],
)  # fmt: skip
def test_other_text_is_not_a_model_file(tmp_path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert f"{name}: not a model file (text that is not a Keras JSON/YAML config)" in _one_error_line(
        run_cli("inspect", path)
    )


@pytest.mark.parametrize(
    "name,text,error",
    [("broken.yaml", "class_name: Sequential\nconfig:\n  layers: [\n", "invalid YAML"),
     ("broken.json", '{"class_name": "Sequential", "config": {', "invalid JSON"),
     ("noclass.json", '{"config": {"layers": []}}', "no top-level class_name")],
)  # fmt: skip
def test_broken_keras_config_keeps_its_precise_error(tmp_path, name: str, text: str, error: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert error in _one_error_line(run_cli("inspect", path))


def test_checkpoint_state_file_points_at_the_checkpoint() -> None:
    line = _one_error_line(run_cli("inspect", FIXTURES / "tf/keras3_ckpt/checkpoint"))
    assert "checkpoint's state file" in line


# ---------------------------------------------------------------- weights without architecture


def test_weights_file_trainable_split_is_marked_unknown() -> None:
    result = run_cli("inspect", FIXTURES / "keras3/conv_bn.weights.h5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert " Total params: 1,313 (5.13 KB)  [counted from stored weights]" in lines
    assert " Trainable params: unknown (weights file without architecture; by weight names 1,297)" in lines
    assert " Non-trainable params: unknown (by weight names 16)" in lines
    full = run_cli("inspect", FIXTURES / "keras3/conv_bn.keras").stdout  # the truth: 1,273 trainable
    assert " Trainable params: 1,273" in full.splitlines()


@pytest.mark.parametrize("mid,path", WEIGHTS_ONLY, ids=[p.name for _, p in WEIGHTS_ONLY])
def test_weights_file_json_is_honest(mid: str, path: Path) -> None:
    from modeltool import load
    from modeltool.ops.summary import model_to_dict

    data = model_to_dict(load(path), weights=True)
    params = data["params"]
    assert params["total"] == manifest()[mid]["params"]["total"]
    assert params["trainable"] is None and params["non_trainable"] is None
    assert params["trainable_guess"] + params["non_trainable_guess"] == params["total"]
    assert all(w["trainable"] is None and isinstance(w["trainable_guess"], bool) for w in data["weights"])


def test_architecture_keeps_a_known_split() -> None:
    from modeltool import load
    from modeltool.ops.summary import model_to_dict

    for path in (FIXTURES / "keras3/conv_bn.keras", FIXTURES / "keras2/conv_bn.h5"):
        params = model_to_dict(load(path))["params"]
        assert params["trainable"] == 1273 and "trainable_guess" not in params, path
    attached = load(FIXTURES / "keras3/conv_bn.json", weights_from=str(FIXTURES / "keras3/conv_bn.weights.h5"))
    assert model_to_dict(attached)["params"]["trainable"] == 1273


def test_custom_objects_give_custom_layers_their_shapes(tmp_path) -> None:
    """Without --custom-objects a custom layer's shape and params are unknown (`?`), never guessed;
    with the user's module, Keras computes them (what `model.summary()` shows for the same file)."""
    plain = run_cli("inspect", FIXTURES / "keras2/custom_layer.json", "--json")
    scaled = next(n for n in json.loads(plain.stdout)["layers"] if n["name"] == "scaled")
    assert scaled["params"] is None
    result = run_cli("inspect", FIXTURES / "keras2/custom_layer.json", "--json", "--custom-objects",
                     FIXTURES / "custom_objects.py")  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    data = json.loads(result.stdout)
    scaled = next(n for n in data["layers"] if n["name"] == "scaled")
    assert scaled["params"] == 28 and scaled["output_shape"] == [None, 4]
    want = manifest()["keras2/custom_layer"]  # what Keras itself reported for the file
    assert data["params"]["total"] == want["params"]["total"]
    assert [n["output_shape"] for n in data["layers"]] == [lay["output_shape"] for lay in want["layers"]]


def test_onnx_intermediate_shapes_on_request() -> None:
    """Plain inspect reads only what an ONNX file states (fast, no `onnx` import); --infer-shapes adds
    the intermediate shapes onnx's shape inference computes."""
    import onnx

    path = FIXTURES / "graphs/conv_bn.onnx"
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    relu = next(n for n in inferred.graph.node if n.op_type == "Relu")
    info = next(v for v in inferred.graph.value_info if v.name == relu.output[0])
    want = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
    plain = json.loads(run_cli("inspect", path, "--json").stdout)
    rich = json.loads(run_cli("inspect", path, "--json", "--infer-shapes").stdout)
    by_name = {n["name"]: n for n in rich["layers"]}
    assert by_name[relu.name]["output_shape"] == want
    assert {n["name"]: n for n in plain["layers"]}[relu.name]["output_shape"] is None
    result = run_cli("inspect", FIXTURES / "keras3/conv_bn.keras", "--infer-shapes")
    assert result.returncode == 2 and "ONNX files only" in result.stderr
