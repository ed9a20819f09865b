"""The page: one self-contained file (nothing fetched from anywhere), the payload carried as data,
written whole or not at all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import modeltool
from modeltool.errors import UsageError
from modeltool.report.html import render, write_report
from modeltool.report.payload import from_model
from tests.conftest import FIXTURES, ROOT

#: an attribute or CSS rule that would make the browser fetch something
FETCHES = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?!#)[^\s"'>]+)|url\(\s*["']?(?!#)""", re.I)


def _payload(path: Path = FIXTURES / "keras3/nested.keras") -> dict:
    return from_model(modeltool.load(path))


def _data(page: str) -> dict:
    raw = re.search(r'<script type="application/json" id="payload">(.*?)</script>', page, re.S).group(1)
    return json.loads(raw)


@pytest.mark.parametrize("path", ["keras3/nested.keras", "graphs/conv_bn.onnx", "graphs/conv_bn.tflite"])
def test_the_page_names_no_other_file(path: str) -> None:
    page = render(_payload(FIXTURES / path))
    assert not FETCHES.findall(page), FETCHES.findall(page)[:5]
    assert "http" not in " ".join(re.findall(r"""(?:src|href)\s*=\s*["'][^"']*["']""", page, re.I))
    assert "<link" not in page and "@import" not in page and "sourceMappingURL" not in page
    assert "<script src" not in page.replace(" ", "")
    # the layout library and its license travel with it
    assert "var dagre=" in page and "Copyright (c) 2012-2014 Chris Pettitt" in page


def test_the_payload_is_data_whatever_the_names_hold() -> None:
    payload = _payload()
    node = payload["graphs"][0]["nodes"][0]
    node["label"] = "</script><script>alert(1)</script>"
    node["metrics"]["max_abs"] = float("nan")
    node["metrics"]["snr_db"] = float("inf")
    page = render(payload)
    assert page.count("</script>") == 3  # the data block, dagre, the page's script: no more
    data = _data(page)
    first = data["graphs"][0]["nodes"][0]
    assert first["label"] == "</script><script>alert(1)</script>"
    assert first["metrics"]["max_abs"] == "nan" and first["metrics"]["snr_db"] == "inf"


def test_numpy_figures_are_plain_json() -> None:
    np = pytest.importorskip("numpy")
    payload = _payload()
    payload["graphs"][0]["nodes"][0]["metrics"]["cosine"] = np.float32(0.5)
    payload["graphs"][0]["nodes"][0]["histogram"] = {"edges": np.array([0.0, 1.0]), "counts": np.array([4])}
    first = _data(render(payload))["graphs"][0]["nodes"][0]
    assert first["metrics"]["cosine"] == 0.5 and first["histogram"] == {"edges": [0.0, 1.0], "counts": [4]}


def test_a_broken_payload_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    payload = _payload()
    payload["kind"] = "unknown"
    with pytest.raises(ValueError, match="kind"):
        write_report(payload, str(tmp_path / "r.html"))
    assert list(tmp_path.iterdir()) == []


def test_write_report_replaces_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    write_report(_payload(), str(out))
    first = out.read_text()
    assert first.startswith("<!DOCTYPE html>") and first.rstrip().endswith("</html>")
    with pytest.raises(UsageError, match="--force"):
        write_report(_payload(FIXTURES / "graphs/conv_bn.onnx"), str(out))
    assert out.read_text() == first
    write_report(_payload(FIXTURES / "graphs/conv_bn.onnx"), str(out), force=True)
    assert "conv_bn.onnx" in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary left behind


def test_the_vendored_files_ship_with_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"modeltool.report" = [' in text
    for name in ("vendor/dagre.min.js", "vendor/LICENSE", "static/report.js", "static/report.css"):
        assert (ROOT / "modeltool/report" / name).is_file()
