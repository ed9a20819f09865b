"""What reaches the terminal: the report on stdout, nothing on stderr but modeltool's own lines, no
library chatter (Keras UserWarnings, absl's HDF5 notice, the TFLite converter's C++ lines), no
temporary file names, and nothing at all with -q."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, run_cli

CASES = {
    "h5": (FIXTURES / "keras3/conv_bn.keras", "m.h5", []),  # absl: "You are saving your model as an HDF5 file"
    "int8": (FIXTURES / "keras3/conv_bn.keras", "q.tflite", ["--quantize", "int8"]),  # converter lines
    "keras2-rnn": (FIXTURES / "keras2/rnn_text.h5", "r.onnx", []),  # Keras UserWarnings on legacy configs
    "nested-sm": (FIXTURES / "keras2/nested.h5", "sm/", []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_convert_prints_no_library_chatter(tmp_path, case: str) -> None:
    src, dst, extra = CASES[case]
    result = run_cli("convert", src, f"{tmp_path}/{dst}", *extra)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert ".tmp-" not in result.stdout and "WARNING" not in result.stdout
    assert "result: PASSED" in result.stdout or "roundtrip" in result.stdout


def test_quiet_prints_nothing(tmp_path) -> None:
    result = run_cli("convert", FIXTURES / "keras3/sequential_mlp.keras", tmp_path / "m.onnx", "-q")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    result = run_cli("verify", FIXTURES / "keras3/sequential_mlp.keras", tmp_path / "m.onnx", "-q")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_runtime_logs_on_fd2_never_reach_stderr_whenever_they_come():
    """TensorFlow prints "failed call to cuInit" from C++ (fd 2) when a graph first runs, long after
    import, on machines with CUDA libraries and no driver; any such write while a command runs is kept
    off stderr, and modeltool's own line still arrives (and --debug keeps the runtime's)."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from modeltool.cli import own_stderr\n"
        "with own_stderr(sys.argv[1] == 'quiet'):\n"
        "    os.write(2, b'E0000 cuda_platform.cc:52] failed call to cuInit\\n')\n"
        "    print('modeltool: error: x.h5: what is wrong', file=sys.stderr)\n"
        "os.write(2, b'after\\n')\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code, "quiet"], capture_output=True, text=True, timeout=60)
    assert quiet.stderr == "modeltool: error: x.h5: what is wrong\nafter\n"
    loud = subprocess.run([sys.executable, "-c", code, "debug"], capture_output=True, text=True, timeout=60)
    assert "failed call to cuInit" in loud.stderr and "what is wrong" in loud.stderr
