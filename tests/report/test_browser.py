"""The report in a real browser (Debian's headless Chromium): the graph is drawn, a click shows a
node's figures, search finds and opens, the first view of a 6,862-op graph comes within seconds,
nothing is fetched. Screenshots land in the test's folder; with MODELTOOL_SCREENSHOTS=1 the ResNet50
one also replaces docs/images/report.png (the README's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modeltool
from modeltool.report.html import write_report
from modeltool.report.payload import from_diff, from_verification
from tests.conftest import CORPUS, FIXTURES, ROOT, requires_corpus, run_cli
from tests.report.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")]

#: the first view must be drawn within this many seconds of opening the file (load, parse, layout, SVG)
FIRST_VIEW_S = 5.0
HAR = CORPUS / "frozen_curiousily_har_lstm_tf1/frozen_har.pb"


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM, 1400, 900) as b:  # type: ignore[arg-type]
        yield b


def _open(browser: Browser, page: Path) -> dict:
    start = time.monotonic()
    browser.open(page)
    state = browser.wait_for("window.modeltoolReport && (modeltoolReport.ready || modeltoolReport.error) "
                             "&& {ready: modeltoolReport.ready, error: modeltoolReport.error || null, "
                             "firstViewMs: modeltoolReport.firstViewMs, shown: modeltoolReport.shown, "
                             "total: modeltoolReport.total}")  # fmt: skip
    state["wall_s"] = time.monotonic() - start
    assert state["ready"] and state["error"] is None, state
    assert browser.requested_urls() == [page.resolve().as_uri()]  # the page itself and nothing else
    print(f"{page.name}: {json.dumps(state)}")
    return state


def _find(browser: Browser, text: str) -> None:
    """Search as a user: focus the box, type, press Enter (opens the groups, centres, selects)."""
    browser.evaluate("document.getElementById('search').value = ''; document.getElementById('search').focus()")
    browser.type_text(text)
    browser.wait_for("document.querySelector('#results li') !== null")
    browser.press("Enter", 13)


def _click(browser: Browser, node_id: str, part: str = ".body") -> None:
    selector = json.dumps(f'[data-id="{node_id}"] {part}')
    box = browser.wait_for(f"(() => {{ const e = document.querySelector({selector}); if (!e) return null;"
                           " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    browser.click_at(*box)


def _panel(browser: Browser) -> str:
    return browser.evaluate("document.getElementById('panel').innerText")


def test_resnet50_renders_and_a_click_shows_the_figures(browser: Browser, resnet50_h5: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "modeltool", "inspect", "model.h5", "--html", str(page)],
                          cwd=resnet50_h5.parent, capture_output=True, text=True, timeout=300)  # as the README shows
    assert done.returncode == 0, done.stderr
    state = _open(browser, page)
    assert state["wall_s"] < FIRST_VIEW_S
    assert state["shown"] == state["total"] == 177  # every layer drawn: no groups in ResNet50
    assert browser.evaluate("document.querySelectorAll('#viewport g.node').length") == 177
    assert browser.evaluate("document.querySelectorAll('#viewport path.edge').length") >= 176
    _find(browser, "conv1_conv")
    browser.wait_for("(document.querySelector('#panel h2') || {}).textContent === 'conv1_conv'")
    _click(browser, "conv1_bn")  # a real mouse click on the node drawn below it
    text = browser.wait_for("document.querySelector('#panel h2').textContent === 'conv1_bn' && "
                            "document.getElementById('panel').innerText")  # fmt: skip
    assert "BatchNormalization" in text and "256" in text and "(None, 112, 112, 64)" in text
    assert "metrics" in text.lower() and "inputs (1)\nconv1_conv" in text.lower() and "outputs (1)" in text.lower()
    time.sleep(3)  # the search's highlight pulse has faded
    browser.screenshot(tmp_path / "resnet50.png")
    if os.environ.get("MODELTOOL_SCREENSHOTS") == "1":
        shutil.copy(tmp_path / "resnet50.png", ROOT / "docs/images/report.png")


@requires_corpus
def test_unrolled_lstm_opens_small_and_search_opens_the_groups(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "har.html"
    done = run_cli("inspect", HAR, "--html", page)
    assert done.returncode == 0, done.stderr
    state = _open(browser, page)
    assert state["wall_s"] < FIRST_VIEW_S, state
    assert state["total"] > 7000 and state["shown"] < 100  # 6,862 ops and their scopes; a small first view
    target = "rnn/rnn/multi_rnn_cell/cell_1/cell_1/basic_lstm_cell/basic_lstm_cell_86/MatMul"
    started = time.monotonic()
    _find(browser, "cell_1/basic_lstm_cell/basic_lstm_cell_86/MatMul")
    browser.wait_for(f"document.querySelector('[data-id={json.dumps(target)}].selected') !== null", timeout=30)
    print(f"search and open: {time.monotonic() - started:.2f} s")
    assert "MatMul" in _panel(browser)
    browser.screenshot(tmp_path / "har_found.png")
    # a group's title closes it; its + opens it again
    group = target.rsplit("/", 1)[0] + "/"  # the scope around it: its title is on the screen
    shown = browser.evaluate("modeltoolReport.views.get(0).shown")
    _click(browser, group, ".cluster-title")
    browser.wait_for(f"modeltoolReport.views.get(0).shown < {shown}")
    _click(browser, group, ".toggle")
    browser.wait_for(f"document.querySelector('.cluster[data-id={json.dumps(group)}]') !== null")


def test_verify_page_colours_by_error_and_shows_the_histogram(browser: Browser, tmp_path: Path) -> None:
    model = modeltool.load(FIXTURES / "keras3/nested.keras")
    records = [{"name": "x", "status": "ok", "max_abs": 0.0, "cosine": 1.0, "passed": True},
               {"name": "inner_dense_1", "status": "first", "max_abs": 0.25, "cosine": 0.93, "snr_db": 11.2,
                "passed": False, "histogram": {"edges": [-0.3, -0.1, 0.1, 0.3], "counts": [2, 9, 3]}},
               {"name": "enc_in", "status": "unmatched"}]  # fmt: skip
    page = tmp_path / "verify.html"
    write_report(from_verification(model, records, summary=["verify: FAILED"]), str(page))
    _open(browser, page)
    first = browser.evaluate("document.querySelector('[data-id=\"inner_block/inner_dense_1\"]').className.baseVal")
    assert "s-first" in first
    legend = browser.evaluate("document.getElementById('legend').innerText")
    assert "first divergence" in legend and "within tolerance" in legend
    _click(browser, "inner_block/inner_dense_1")
    text = browser.wait_for("document.getElementById('panel').innerText.includes('max_abs') && "
                            "document.getElementById('panel').innerText")  # fmt: skip
    assert "0.25" in text and "snr_db" in text and "differences" in text.lower()
    assert browser.evaluate("document.querySelectorAll('#panel svg.hist rect').length") == 3
    browser.screenshot(tmp_path / "verify.png")


def test_diff_page_marks_changes(browser: Browser, tmp_path: Path, diff_pair) -> None:
    from modeltool.ops.diff import diff_models

    a, b = (modeltool.load(p) for p in diff_pair)
    page = tmp_path / "diff.html"
    write_report(from_diff(diff_models(a, b), a, b), str(page))
    _open(browser, page)
    classes = browser.evaluate("Object.fromEntries([...document.querySelectorAll('#viewport g.node')]"
                               ".map(e => [e.dataset.id, e.getAttribute('class')]))")  # fmt: skip
    assert "s-removed" in classes["dropout"] and "s-added" in classes["extra"] and "s-changed" in classes["hidden"]
    _click(browser, "hidden")
    assert "32 -> 48" in browser.wait_for("document.getElementById('panel').innerText.includes('units') && "
                                          "document.getElementById('panel').innerText")  # fmt: skip


def test_verify_localize_html_end_to_end(browser: Browser, tmp_path: Path) -> None:
    """`verify --localize --html` on a conversion damaged in one layer: the page marks that layer as
    the first divergence, and clicking it shows its figures and the histogram of its differences."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    src = FIXTURES / "keras3/conv_bn.keras"
    assert run_cli("convert", src, tmp_path / "m.onnx", "-q").returncode == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if {"dw", "dw_1"} & set(n.name.split("/")) and n.op_type == "Conv")
    weight = numpy_helper.to_array(inits[node.input[1]]) * 1.5
    inits[node.input[1]].CopyFrom(numpy_helper.from_array(weight.astype(np.float32), node.input[1]))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    page = tmp_path / "verify.html"
    done = run_cli("verify", src, tmp_path / "bad.onnx", "--localize", "--html", page)
    assert done.returncode == 1 and page.exists(), done.stderr
    _open(browser, page)
    assert "s-first" in browser.evaluate("document.querySelector('[data-id=\"dw\"]').className.baseVal")
    _click(browser, "dw")
    text = browser.wait_for("document.getElementById('panel').innerText.includes('snr_db') && "
                            "document.getElementById('panel').innerText")  # fmt: skip
    assert "max_abs" in text and "differences" in text.lower()
    assert browser.evaluate("document.querySelectorAll('#panel svg.hist rect').length") > 0
    browser.screenshot(tmp_path / "verify_localize.png")
