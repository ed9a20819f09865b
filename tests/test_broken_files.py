"""A corpus of broken files for every format, fed to every command: each answers exit 2 with one
line naming the file, no traceback, no "unexpected" error, and writes nothing.

The commands run through the real CLI entry point (`modeltool.cli.main`) in one child process, so
the whole matrix costs one interpreter start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py

from tests.conftest import FIXTURES, ROOT

RNG_BYTES = bytes((i * 7919 + 13) % 256 for i in range(4096))


def _copy(src: Path, dst: Path) -> Path:
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return dst


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def broken_corpus(tmp: Path) -> dict[str, Path]:
    """name -> broken file, for every format modeltool reads."""
    tmp.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    singles = {
        "h5": FIXTURES / "keras3/conv_bn.h5", "k2h5": FIXTURES / "keras2/rnn_text.h5",
        "weights.h5": FIXTURES / "keras3/conv_bn.weights.h5", "keras": FIXTURES / "keras3/conv_bn.keras",
        "json": FIXTURES / "keras3/conv_bn.json", "yaml": FIXTURES / "keras2/conv_bn.yaml",
        "onnx": FIXTURES / "graphs/conv_bn.onnx", "tflite": FIXTURES / "graphs/conv_bn.tflite",
        "pb": FIXTURES / "tf/tf1_frozen.pb", "pbtxt": FIXTURES / "tf/tf1_frozen.pbtxt",
    }  # fmt: skip
    for kind, src in singles.items():
        suffix = "".join(src.suffixes[-2:]) if kind == "weights.h5" else src.suffix
        out[f"{kind}-empty"] = tmp / f"{kind}-empty{suffix}"
        out[f"{kind}-empty"].write_bytes(b"")
        out[f"{kind}-random"] = tmp / f"{kind}-random{suffix}"
        out[f"{kind}-random"].write_bytes(RNG_BYTES)
        for frac in (0.1, 0.5, 0.9):
            name = f"{kind}-trunc{int(frac * 100)}"
            out[name] = _copy(src, tmp / f"{name}{suffix}")
            _truncate(out[name], frac)
    # corrupted configs and missing datasets
    bad_cfg = _copy(FIXTURES / "keras3/conv_bn.h5", tmp / "h5-badconfig.h5")
    with h5py.File(bad_cfg, "r+") as f:
        f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": [{"class_nam'
    missing = _copy(FIXTURES / "keras3/conv_bn.h5", tmp / "h5-missingweights.h5")
    with h5py.File(missing, "r+") as f:
        group = f["model_weights/conv1"]
        for name in list(group.keys()):
            del group[name]
    out["h5-badconfig"], out["h5-missingweights"] = bad_cfg, missing
    keras_bad = tmp / "keras-badconfig.keras"
    with zipfile.ZipFile(FIXTURES / "keras3/conv_bn.keras") as src, zipfile.ZipFile(keras_bad, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, b"{not json" if item.filename == "config.json" else src.read(item))
    out["keras-badconfig"] = keras_bad
    keras_noweights = tmp / "keras-noweights.keras"
    with zipfile.ZipFile(FIXTURES / "keras3/conv_bn.keras") as src, zipfile.ZipFile(keras_noweights, "w") as dst:
        for item in src.infolist():
            if item.filename == "model.weights.h5":
                dst.writestr(item, RNG_BYTES)
            else:
                dst.writestr(item, src.read(item))
    out["keras-badweights"] = keras_noweights
    badzip = _copy(FIXTURES / "keras3/conv_bn.keras", tmp / "keras-badzip.keras")
    data = bytearray(badzip.read_bytes())
    data[-22:] = b"\x00" * 22  # the end-of-central-directory record
    badzip.write_bytes(bytes(data))
    out["keras-badzip"] = badzip
    json_bad = tmp / "json-corrupted.json"
    json_bad.write_text((FIXTURES / "keras3/conv_bn.json").read_text()[:-40] + "}}}")
    out["json-corrupted"] = json_bad
    # wrong extension: random bytes dressed as every suffix
    for suffix in (".onnx", ".tflite", ".keras", ".h5", ".yaml"):
        out[f"wrongext{suffix}"] = tmp / f"wrongext{suffix}"
        out[f"wrongext{suffix}"].write_bytes(b"\x00\x01garbage" * 50)
    # TF graph formats given as directories
    sm = _copy(FIXTURES / "tf/module_sm", tmp / "sm-trunc")
    _truncate(sm / "saved_model.pb", 0.5)
    out["savedmodel-trunc"] = sm
    sm_vars = _copy(FIXTURES / "tf/module_sm", tmp / "sm-noshard")
    os.remove(sm_vars / "variables/variables.data-00000-of-00001")
    out["savedmodel-noshard"] = sm_vars
    ckpt = _copy(FIXTURES / "tf/keras3_ckpt", tmp / "ckpt-truncindex")
    _truncate(ckpt / "ckpt-1.index", 0.5)
    out["ckpt-truncindex"] = ckpt
    ckpt2 = _copy(FIXTURES / "tf/keras3_ckpt", tmp / "ckpt-truncdata")
    _truncate(ckpt2 / "ckpt-1.data-00000-of-00001", 0.5)
    out["ckpt-truncdata"] = ckpt2
    return out


SCRIPT = r"""
import contextlib, io, json, os, sys
from modeltool.cli import main
cases = json.loads(sys.argv[1])
good, good_dst, out_dir = sys.argv[2], sys.argv[3], sys.argv[4]
results = []
for name, path in cases.items():
    for cmd in (["inspect", path, "--weights", "--stats"], ["convert", path, os.path.join(out_dir, name + ".onnx")],
                ["diff", path, good], ["check", path], ["verify", path, good],
                ["transfer-weights", path, good_dst, "-o", os.path.join(out_dir, name + ".keras")],
                ["extract", path, "--outputs", "bn1", "-o", os.path.join(out_dir, name + "_x.keras")]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(cmd)
        results.append({"case": name, "cmd": cmd[0], "rc": rc, "stderr": err.getvalue()})
print("RESULTS" + json.dumps(results))
"""


def test_every_command_on_every_broken_file(tmp_path) -> None:
    cases = broken_corpus(tmp_path / "in")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    good = str(FIXTURES / "keras3/conv_bn.keras")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps({k: str(v) for k, v in cases.items()}), good,
         str(FIXTURES / "keras3/conv_bn.json"), str(out_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.split("RESULTS", 1)[1])
    assert len(rows) == 7 * len(cases)
    bad = []
    for row in rows:
        lines = [ln for ln in row["stderr"].splitlines() if ln.startswith("modeltool")]
        ok = (row["rc"] == 2 and len(lines) == 1 and "Traceback" not in row["stderr"]
              and "unexpected" not in row["stderr"] and Path(cases[row["case"]]).name in lines[0])  # fmt: skip
        if not ok:
            bad.append(f"{row['case']} {row['cmd']} rc={row['rc']}: {row['stderr'].strip()[-300:]}")
    assert not bad, "\n".join(bad)
    assert list(out_dir.iterdir()) == []  # nothing written, not even a temporary file
