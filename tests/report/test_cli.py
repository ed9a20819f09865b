"""`inspect --html` and `diff --html`: the real console script, TensorFlow never imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, ROOT, run_cli


def _payload(page: Path) -> dict:
    text = page.read_text()
    start = text.index('id="payload">') + len('id="payload">')
    return json.loads(text[start:text.index("</script>", start)])


def test_inspect_html_writes_once_and_overwrites_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = run_cli("inspect", FIXTURES / "keras3/nested.keras", "--html", out)
    assert done.returncode == 0, done.stderr
    assert "Total params: 115" in done.stdout  # the summary is printed as without --html
    assert _payload(out)["kind"] == "inspect"
    before = out.read_bytes()
    again = run_cli("inspect", FIXTURES / "graphs/conv_bn.onnx", "--html", out)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    assert out.read_bytes() == before
    forced = run_cli("inspect", FIXTURES / "graphs/conv_bn.onnx", "--html", out, "--force", "-q")
    assert forced.returncode == 0 and forced.stdout == ""
    assert _payload(out)["graphs"][0]["title"] == "conv_bn.onnx (ops)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # written beside, renamed


def test_inspect_html_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = run_cli("inspect", FIXTURES / "keras3/nested.keras", "--html", tmp_path / "no" / "r.html")
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_diff_html_marks_the_changes(tmp_path: Path, diff_pair) -> None:
    out = tmp_path / "diff.html"
    done = run_cli("diff", *diff_pair, "--html", out)
    assert done.returncode == 1  # different: the exit code is unchanged by --html
    assert "- layer dropout (Dropout)" in done.stdout
    statuses = {n["id"]: n["status"] for n in _payload(out)["graphs"][0]["nodes"]}
    assert statuses == {"hidden": "changed", "dropout": "removed", "extra": "added", "predictions": None}
    refused = run_cli("diff", *diff_pair, "--html", out)
    assert refused.returncode == 2 and "--force" in refused.stderr


SCRIPT = """
import sys
from modeltool.cli import main
code = main(["inspect", sys.argv[1], "--html", sys.argv[2], "-q"])
code2 = main(["diff", sys.argv[1], sys.argv[1], "--html", sys.argv[3], "-q"])
heavy = [m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]
print(code, code2, heavy)
"""


def test_reports_never_import_tensorflow(tmp_path: Path) -> None:
    for path in (FIXTURES / "keras3/nested.keras", FIXTURES / "graphs/conv_bn.tflite"):
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(tmp_path / f"{path.suffix}.i.html"),
                               str(tmp_path / f"{path.suffix}.d.html")], capture_output=True, text=True, cwd=ROOT,
                              timeout=300)  # fmt: skip
        assert done.stdout.splitlines()[-1] == "0 0 []", done.stdout + done.stderr
        assert (tmp_path / f"{path.suffix}.i.html").is_file() and (tmp_path / f"{path.suffix}.d.html").is_file()
