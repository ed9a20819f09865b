""".keras archives with members no Keras writes: a weights `.npz` holding pickled objects (the
published exploit against Keras 3.0, which loaded it with `allow_pickle=True`) and zip-slip names.
`inspect` names them and reads on (exit 0); `convert` refuses them in one line (exit 2), writes
nothing and imports no TensorFlow; and nothing is ever unpickled."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, ROOT, run_cli

GOOD = FIXTURES / "keras3/sequential_mlp.keras"


class _CreatesFile:
    """Unpickling this creates `path`: what an attacker's payload does, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def _pickled_npz(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, payload=np.array([_CreatesFile(marker)], dtype=object))  # savez pickles object arrays
    return buf.getvalue()


def _archive(path: Path, add: dict[str, bytes], drop: tuple[str, ...] = ()) -> Path:
    """A copy of a real Keras-3-written archive with members dropped and added."""
    with zipfile.ZipFile(GOOD) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            if item.filename not in drop:
                dst.writestr(item, src.read(item))
        for name, data in add.items():
            dst.writestr(name, data)
    return path


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_payload_really_runs_when_unpickled(tmp_path) -> None:
    """The tests below can fail: loading this npz the way Keras 3.0 did creates the marker."""
    marker = tmp_path / "PWNED"
    npz = tmp_path / "w.npz"
    npz.write_bytes(_pickled_npz(marker))
    with np.load(npz, allow_pickle=True) as data:
        data["payload"]
    assert marker.exists()


@pytest.mark.parametrize("case", ["weights_replaced", "npz_added"])
def test_pickled_npz_weights_are_named_and_never_unpickled(tmp_path, case: str) -> None:
    marker = tmp_path / "PWNED"
    drop = ("model.weights.h5",) if case == "weights_replaced" else ()
    evil = _archive(tmp_path / "evil.keras", {"model.weights.npz": _pickled_npz(marker)}, drop)

    result = run_cli("inspect", evil)
    assert result.returncode == 0, result.stderr
    warning = next(ln for ln in result.stdout.splitlines() if "Warning:" in ln)
    assert "'model.weights.npz'" in warning and "pickled" in warning and "not read" in warning
    data = json.loads(run_cli("inspect", evil, "--json").stdout)
    assert [u["member"] for u in data["extra"]["unsafe_members"]] == ["model.weights.npz"]
    assert any("model.weights.npz" in w and "pickled" in w for w in data["warnings"])

    out = tmp_path / "o.onnx"
    for args in (["convert", evil, out], ["convert", evil, out, "--unsafe"]):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        line = _one_error_line(result)
        assert "evil.keras" in line and "'model.weights.npz'" in line and "pickled" in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.keras"]
    assert not marker.exists()


def test_keras_style_npz_of_dicts_is_pickled_too(tmp_path) -> None:
    """Keras's own `weights_format="npz"` saves one dict per layer with `np.savez`, which pickles
    it: modeltool cannot read such weights without unpickling, so it names them instead."""
    buf = io.BytesIO()
    np.savez(buf, __root__={}, **{"layers/dense": {"0": np.zeros((2, 3), "float32")}})
    evil = _archive(tmp_path / "npz.keras", {"model.weights.npz": buf.getvalue()}, ("model.weights.h5",))
    from modeltool import load

    model = load(evil)
    (found,) = model.metadata.extra["unsafe_members"]
    assert found["member"] == "model.weights.npz" and "__root__.npy" in found["reason"]


@pytest.mark.parametrize(
    "member,why",
    [("../../escaped.txt", "'..'"), ("/tmp/absolute_escape.txt", "absolute"), ("assets\\..\\x.txt", "backslash"),
     ("C:/x.txt", "drive")],
)  # fmt: skip
def test_zip_slip_member_is_named_and_refused(tmp_path, member: str, why: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    evil = _archive(work / "model.keras", {member: b"should never be written"})

    result = run_cli("inspect", evil)
    assert result.returncode == 0, result.stderr
    warning = next(ln for ln in result.stdout.splitlines() if "Warning:" in ln)
    assert repr(member) in warning and why in warning

    result = run_cli("convert", evil, work / "o.onnx")
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result)
    assert "model.keras" in line and repr(member) in line and "no Keras writes" in line
    assert sorted(p.name for p in work.iterdir()) == ["model.keras"]
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()


def test_refusal_comes_before_tensorflow(tmp_path) -> None:
    evil = _archive(tmp_path / "slip.keras", {"../x": b""})
    script = (
        "import sys\nfrom modeltool.cli import main\n"
        f"rc = main(['convert', {str(evil)!r}, {str(tmp_path / 'o.onnx')!r}])\n"
        "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr


def test_member_names_keras_writes_are_not_flagged(tmp_path) -> None:
    from modeltool.keras.safety import unsafe_member_name

    for name in ("config.json", "metadata.json", "model.weights.h5", "model.weights.npz", "assets/vocab..v2.txt",
                 "assets/layers/string_lookup/vocabulary.txt"):  # fmt: skip
        assert unsafe_member_name(name) is None, name
    buf = io.BytesIO()
    np.savez_compressed(buf, table=np.arange(6, dtype="float32"))
    plain = _archive(tmp_path / "plain.keras", {"assets/table.npz": buf.getvalue()})
    from modeltool import load

    for path in (GOOD, FIXTURES / "keras3/nested.keras", plain):
        model = load(path)
        assert "unsafe_members" not in model.metadata.extra and not model.warnings, path


def test_unreadable_npz_is_named(tmp_path) -> None:
    broken = _archive(tmp_path / "broken.keras", {"model.weights.npz": b"PK\x03\x04 not really a zip"})
    from modeltool import load

    (found,) = load(broken).metadata.extra["unsafe_members"]
    assert found["member"] == "model.weights.npz" and "not a readable .npz" in found["reason"]
