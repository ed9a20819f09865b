"""Inspection never imports TensorFlow (it takes seconds): proven in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import CORPUS, FIXTURES, ROOT

PATHS = [
    FIXTURES / "keras3/rnn_text.keras",
    FIXTURES / "keras3/rnn_text.h5",
    FIXTURES / "keras3/rnn_text.weights.h5",
    FIXTURES / "keras3/rnn_text.json",
    FIXTURES / "keras2/rnn_text.h5",
    FIXTURES / "keras2/rnn_text_weights.h5",
    FIXTURES / "keras2/rnn_text.yaml",
    FIXTURES / "graphs/conv_bn.onnx",
    FIXTURES / "graphs/conv_bn.tflite",
    FIXTURES / "tf/keras2_sm",
    FIXTURES / "tf/keras3_export",
    FIXTURES / "tf/tf1_builder",
    FIXTURES / "tf/tf1_ckpt",
    FIXTURES / "tf/keras3_ckpt",
    FIXTURES / "tf/tf1_frozen.pb",
    FIXTURES / "tf/tf1_frozen.pbtxt",
]
if CORPUS.is_dir():
    PATHS += [CORPUS / "carnd_patrick_lambda_h5/model.h5", CORPUS / "tflite_erik_rnn_quant/model_quantized.tflite",
              CORPUS / "serving_tf2_half_plus_two/00000123", CORPUS / "ckpt_tf2_jessie_keras_weights/training_2",
              CORPUS / "tf2onnx_lstm_frozen/frozen.pb"]  # fmt: skip

SCRIPT = """
import json, sys
from modeltool.cli import main
import modeltool
heavy = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnxruntime")
report = {}
rc = main(["--help"])
for path in sys.argv[1:]:
    m = modeltool.load(path)
    modeltool.to_dict(m, weights=True, stats=True)
    modeltool.summary(m)
    rc = main(["inspect", path, "--json", "--weights"])
    report[path] = [name for name in heavy if name in sys.modules]
rc = main(["diff", sys.argv[1], sys.argv[2], "--json"])  # diff is IR-only too
report["diff"] = [name for name in heavy if name in sys.modules]
print("REPORT" + json.dumps(report))
"""


def test_inspect_imports_no_tensorflow() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, PATHS)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert len(report) == len(PATHS) + 1
    assert all(imported == [] for imported in report.values()), report
