"""check: each rule measured on real converted models; the policy schema refuses what it does not
know; JUnit XML parses with one testcase per rule; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import shutil
import subprocess
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml

from modeltool.convert import ConvertOptions, convert
from modeltool.ops.check import check_model
from modeltool.policy import PolicyError, load_policy, validate
from modeltool.quantization import quantization_kind
from tests.conftest import FIXTURES, ROOT, run_cli

EXAMPLE = ROOT / "docs/examples/policy.yaml"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("check")
    src = str(FIXTURES / "keras3/conv_bn.keras")
    out = {"src": src}
    for name, dst, quantize in (("onnx", "m.onnx", None), ("tflite", "m.tflite", None), ("int8", "q.tflite", "int8"),
                                ("float16", "h.tflite", "float16")):  # fmt: skip
        assert convert(src, str(tmp / dst), ConvertOptions(quantize=quantize)).written
        out[name] = str(tmp / dst)
    import keras  # dynamic-range quantization leaves tensors under 1024 elements float: a wider model

    keras.utils.set_random_seed(0)
    inp = keras.Input((64,), name="x")
    keras.Model(inp, keras.layers.Dense(64, name="wide")(inp)).save(tmp / "wide.keras")
    assert convert(str(tmp / "wide.keras"), str(tmp / "d.tflite"), ConvertOptions(quantize="dynamic")).written
    out["dynamic"] = str(tmp / "d.tflite")
    out["tmp"] = tmp
    return out


def _rules(report) -> dict:
    return {r.id: r.passed for r in report.rules}


def test_documented_example_policy_passes(converted) -> None:
    """docs/examples/policy.yaml, verbatim, on the model it describes (ONNX and TFLite)."""
    policy = load_policy(str(EXAMPLE))
    for kind in ("onnx", "tflite"):
        report = check_model(converted[kind], policy, policy_path=str(EXAMPLE))
        assert report.passed, report.render()
        rules = _rules(report)
        assert rules["parity.logits"] is True and rules["interface.outputs.logits"] is True
        assert rules["latency.median"] is True
        skipped = "tflite" if kind == "onnx" else "onnx"
        assert all(v is None for k, v in rules.items() if k.startswith(skipped + "."))


def test_each_rule_fails_when_it_should(converted, tmp_path) -> None:
    strict = validate({
        "interface": {"inputs": [{"name": "pixels", "dtype": "float16", "shape": [1, 16, 16, 3]}],
                      "outputs": [{"name": "probs"}], "dynamic_batch": False},
        "size": {"max_file_mb": 0.001, "max_params": 10, "min_params": 10**9},
        "onnx": {"opset": {"min": 19}, "allowed_ops": ["Conv"], "forbidden_ops": ["Conv"]},
        "latency": {"runs": 3, "warmup": 0, "max_median_ms": 0.0},
    })  # fmt: skip
    report = check_model(converted["onnx"], strict)
    rules = _rules(report)
    failing = {"interface.inputs.pixels", "interface.outputs.probs", "interface.dynamic_batch", "size.file",
               "size.params.max", "size.params.min", "onnx.opset", "onnx.allowed_ops", "onnx.forbidden_ops",
               "latency.median"}  # fmt: skip
    assert {k for k, v in rules.items() if v is False} == failing
    assert rules["weights.finite"] is True and rules["onnx.checker"] is True and not report.passed
    detail = next(r for r in report.rules if r.id == "interface.inputs.pixels").detail
    assert "dtype float32 != float16" in detail and "shape (None, 16, 16, 3) != (1, 16, 16, 3)" in detail


def test_tflite_quantization_kinds(converted) -> None:
    import modeltool

    kinds = {k: quantization_kind(modeltool.load(converted[k])) for k in ("tflite", "int8", "dynamic", "float16")}
    assert kinds == {"tflite": "none", "int8": "int8", "dynamic": "dynamic", "float16": "float16"}
    policy = validate({"tflite": {"quantization": "int8"}})
    assert _rules(check_model(converted["int8"], policy))["tflite.quantization"] is True
    assert _rules(check_model(converted["dynamic"], policy))["tflite.quantization"] is False


def test_gpu_delegate_rule_lists_the_ops_the_delegate_does_not_take(converted) -> None:
    """The conv fixture's TFLite holds ops outside the GPU delegate's parser table (its transposed
    convolution reads the batch with SHAPE, a global max pooling is REDUCE_MAX): named with their
    counts. The dense model's ops are all taken."""
    policy = validate({"tflite": {"gpu_delegate": True}})
    report = check_model(converted["tflite"], policy)
    rule = next(r for r in report.rules if r.id == "tflite.gpu_delegate")
    assert rule.passed is False and "SHAPE x1" in rule.measured and "REDUCE_MAX x1" in rule.measured, rule
    assert "model_builder.cc" in rule.detail
    wide = str(converted["tmp"] / "wide.tflite")
    assert convert(str(converted["tmp"] / "wide.keras"), wide, ConvertOptions()).written
    assert _rules(check_model(wide, policy))["tflite.gpu_delegate"] is True
    assert "tflite.gpu_delegate" not in _rules(check_model(converted["tflite"], validate({})))


def test_flex_ops_and_nan_weights_fail(tmp_path) -> None:
    import h5py

    from tests.conftest import CORPUS

    bad = tmp_path / "nan.h5"
    shutil.copy(FIXTURES / "keras3/sequential_mlp.h5", bad)
    with h5py.File(bad, "r+") as f:
        group = f["model_weights/hidden"]
        name = next(n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"])
        arr = group[name][()]
        arr[0, 0] = np.nan
        group[name][...] = arr
    report = check_model(str(bad), validate({}))
    rule = next(r for r in report.rules if r.id == "weights.finite")
    assert rule.passed is False and "1 NaN" in rule.measured and "hidden" in rule.detail
    flex = CORPUS / "tflite_erik_rnn_quant/model_quantized.tflite"
    if flex.exists():
        assert _rules(check_model(str(flex), validate({})))["tflite.flex"] is False


def test_parity_failure_is_exit_1_and_junit(converted, tmp_path) -> None:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(converted["onnx"])
    init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(proto, tmp_path / "bad.onnx")
    junit = tmp_path / "report.xml"
    result = run_cli("check", tmp_path / "bad.onnx", "--reference", converted["src"], "--junit", junit, "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    statuses = {r["rule"]: r["status"] for r in data["rules"]}
    assert data["passed"] is False and statuses["parity.logits"] == "fail"
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert suite.get("name") == "modeltool check" and len(cases) == len(data["rules"])
    assert int(suite.get("failures")) == 1
    assert cases[[c.get("name") for c in cases].index("parity.logits")].find("failure") is not None
    again = run_cli("check", converted["onnx"], "--reference", converted["src"], "--junit", junit)
    assert again.returncode == 0, again.stderr  # a JUnit file modeltool wrote is replaced on rerun
    assert int(ET.parse(junit).getroot().get("failures")) == 0


@pytest.mark.parametrize(
    "text,message",
    [
        ("interface:\n  inputs:\n    - {name: x, dtyp: float32}\n", "interface.inputs[0].dtyp: unknown key"),
        ("size:\n  max_params: many\n", "size.max_params: expected an integer"),
        ("tflite:\n  quantization: int4\n", "tflite.quantization: expected one of none, float16, dynamic, int8"),
        ("onnx:\n  opset: {min: 18, max: 13}\n", "min 18 is above max 13"),
        ("version: 2\n", "version: 2 is not supported"),
        ("latency: {runs: -3}\n", "must be >= 0"),
        ("interface:\n  inputs:\n    - {dtype: float32}\n", "a tensor needs a name"),
        ("- just\n- a list\n", "a policy is a mapping"),
        ("size: {max_params: [1\n", "not valid YAML"),
        ("nonsense: 1\n", "nonsense: unknown key"),
    ],
)
def test_policy_errors_exit_2(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_policy(str(path))
    result = run_cli("check", FIXTURES / "graphs/conv_bn.onnx", "--policy", path)
    assert result.returncode == 2 and message.split(":")[0] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unusable_model_exit_2_and_no_tensorflow_for_file_rules(tmp_path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    result = run_cli("check", empty)
    assert result.returncode == 2 and "empty" in result.stderr
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({k: v for k, v in yaml.safe_load(EXAMPLE.read_text()).items()
                                      if k not in ("parity", "latency")}))  # fmt: skip
    script = ("import sys; from modeltool.cli import main; rc = main(sys.argv[1:]); "
              "print('HEAVY', [m for m in ('tensorflow', 'keras') if m in sys.modules])")  # fmt: skip
    import sys

    for rel in ("graphs/conv_bn.onnx", "graphs/conv_bn.tflite", "keras3/conv_bn.keras"):
        out = subprocess.run([sys.executable, "-c", script, "check", str(FIXTURES / rel), "--policy", str(policy)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
        assert "HEAVY []" in out.stdout, out.stdout + out.stderr
