"""Interrupted and concurrent writes: a conversion killed with SIGKILL mid-write leaves DST absent
or the previous file intact; parallel conversions in one folder do not interfere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modeltool
from modeltool.atomic import temp_name
from tests.conftest import FIXTURES, ROOT


def _convert(src: Path, dst: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "modeltool", "convert", str(src), str(dst), "-q", *extra],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill_while_temporary(proc: subprocess.Popen, folder: Path, stem: str, timeout: float = 120) -> bool:
    """SIGKILL the conversion as soon as its temporary output exists (it lives through the export
    and the verification, seconds). True when the kill landed before the rename."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(f".{stem}.tmp-{proc.pid}-") for p in folder.iterdir()):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    return False


@pytest.mark.parametrize("target", ["model.onnx", "model.tflite", "model.keras"])
def test_sigkill_mid_write_leaves_no_destination(tmp_path, target: str) -> None:
    dst = tmp_path / target
    proc = _convert(FIXTURES / "keras3/conv_bn.keras", dst)
    assert _kill_while_temporary(proc, tmp_path, "model"), "the conversion finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert not dst.exists()


def test_sigkill_keeps_the_previous_file_intact(tmp_path) -> None:
    dst = tmp_path / "model.onnx"
    first = _convert(FIXTURES / "keras3/sequential_mlp.keras", dst)
    assert first.wait(timeout=300) == 0
    before = dst.read_bytes()
    proc = _convert(FIXTURES / "keras3/conv_bn.keras", dst, "--force")
    assert _kill_while_temporary(proc, tmp_path, "model")
    assert dst.read_bytes() == before
    assert [t.name for t in modeltool.load(dst).inputs] == ["features"]  # still the first model, whole


def test_parallel_conversions_in_one_folder(tmp_path) -> None:
    sources = ["sequential_mlp", "conv_bn", "functional_multi_io", "nested"]
    procs = [_convert(FIXTURES / f"keras3/{name}.keras", tmp_path / f"{name}.onnx") for name in sources]
    assert [p.wait(timeout=600) for p in procs] == [0] * len(sources)
    for name in sources:
        out = modeltool.load(tmp_path / f"{name}.onnx")
        src = modeltool.load(FIXTURES / f"keras3/{name}.keras")
        assert [t.name for t in out.inputs] == [t.name for t in src.inputs]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.onnx" for n in sources)


def test_temporary_names_are_unique_siblings(tmp_path) -> None:
    names = {temp_name(str(tmp_path / "m.onnx")) for _ in range(1000)}
    assert len(names) == 1000
    assert all(Path(n).parent == tmp_path and n.endswith(".onnx") and os.path.basename(n).startswith(".m.tmp-")
               for n in names)  # fmt: skip
