"""Every command the README and docs/ show is run here, as written.

Each document's ```bash blocks are read line by line; a line starting with `modeltool` runs in a
folder of its own per document (the real console script in a fresh interpreter), where the file
names the document uses stand for bundled fixtures (or corpus files, for the commands that are about
them). A command passes when it exits 0, or with the code its comment states (`# exit 1`). The
README's ```python blocks are run too. A document may not show a command this test cannot run: a
new file name must be given a stand-in below.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES, ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
F = FIXTURES

#: file names used in the documents -> the bundled file each stands for (per document where they
#: differ); "from:X" is modeltool's conversion of stand-in X, "pixels" inputs of the conv_bn fixture
STAND_INS: dict[str, dict[str, Path | str]] = {
    "*": {
        "model.keras": F / "keras3/conv_bn.keras", "model.h5": F / "keras3/conv_bn.h5",
        "model.onnx": "from:model.keras", "model.tflite": "from:model.keras",
        "legacy.h5": F / "keras2/conv_bn.h5", "arch.json": F / "keras2/conv_bn.json",
        "weights.h5": F / "keras2/conv_bn_weights.h5", "data.npz": "pixels", "real.npz": "pixels",
        "policy.yaml": ROOT / "docs/examples/policy.yaml", "bert.keras": F / "hub/bert_tiny.keras",
    },
    "surgery.md": {
        "trained.h5": F / "keras3/conv_bn.h5", "new_arch.json": F / "keras3/conv_bn.json",
        "old.keras": F / "keras3/conv_bn.keras", "new.keras": F / "keras3/conv_bn.keras",
        "ckpt_dir": F / "tf/keras3_ckpt", "arch.json": F / "keras3/conv_bn.json",
        "classifier.keras": F / "keras3/conv_bn.keras", "nested.keras": F / "keras3/nested.keras",
        "a.keras": F / "keras3/conv_bn.keras", "b.keras": F / "keras3/conv_bn.keras",
        "migrated.keras": "from:legacy.h5",
    },
    "batch.md": {"models.yaml": ROOT / "tests/batch/docs_models.yaml"},
    "localize.md": {"model.h5": F / "keras3/conv_bn.h5", "model.onnx": "from:model.h5"},
    "tf-formats.md": {
        "export_dir": F / "tf/keras3_export", "ckpt_dir": F / "tf/keras3_ckpt", "train_dir": F / "tf/tf1_ckpt",
        "model.json": F / "keras3/conv_bn.json", "frozen.pb": CORPUS / "tf2onnx_lstm_frozen/frozen.pb",
        "model.keras": F / "keras3/conv_bn.keras",
    },
}  # fmt: skip


def _commands(doc: Path) -> list[tuple[str, int]]:
    """(command, expected exit code) for every `modeltool ...` line of the document's bash blocks."""
    out, inside = [], False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```bash", "```sh", "```console") if not inside else False
            continue
        if not inside:
            continue
        command, _, comment = line.strip().partition(" # ")
        for part in command.split("&&"):  # README: `pip install ... && modeltool inspect ...`
            if part.strip().startswith("modeltool "):
                wanted = re.search(r"\bexit (\d)\b", comment)
                out.append((part.strip(), int(wanted.group(1)) if wanted else 0))
    return out


def _python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)


CASES = [(doc, cmd, code) for doc in DOCS for cmd, code in _commands(doc)]


def _stand_ins(doc: Path) -> dict[str, Path | str]:
    return {**STAND_INS["*"], **STAND_INS.get(doc.name, {})}


def _prepare(folder: Path, doc: Path, command: str) -> None:
    """Put each file the command names into `folder` (once per document)."""
    for name, source in _stand_ins(doc).items():
        target = folder / name
        if name not in command or target.exists():
            continue
        if isinstance(source, Path):
            if not source.exists():
                pytest.skip(f"{source} is absent (corpus)")
            if source.is_dir():
                shutil.copytree(source, target)
            elif name == "policy.yaml":  # its reference is relative to its own folder
                text = source.read_text().replace("../../fixtures/", f"{FIXTURES}/")
                target.write_text(text)
            else:
                shutil.copy(source, target)
        elif source == "pixels":  # inputs of the conv_bn fixture
            np.savez(target, pixels=np.random.default_rng(0).standard_normal((8, 16, 16, 3)).astype("float32"))
        elif source.startswith("from:"):  # converted by modeltool from another stand-in
            origin = source.split(":", 1)[1]
            _prepare(folder, doc, origin)
            assert _run(folder, f"modeltool convert {origin} {name}").returncode == 0


def _run(folder: Path, command: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    for i, word in enumerate(argv[2:], start=2):  # each example stands alone: its output is not there yet
        written = (argv[1] in ("convert",) and i == 3) or argv[i - 1] in ("-o", "--output")
        if written and (folder / word.rstrip("/")).exists() and folder != ROOT:
            target = folder / word.rstrip("/")
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    return subprocess.run([sys.executable, "-m", "modeltool", *argv[1:]], cwd=folder, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("doc,command,code", CASES, ids=[f"{d.name}:{c}"[:90] for d, c, _ in CASES])
def test_documented_command_runs(doc: Path, command: str, code: int, tmp_path_factory) -> None:
    folder = _folder(tmp_path_factory, doc)
    if doc.name == "README.md" and " fixtures/" in command:
        folder = ROOT  # README command 1 runs in the checkout
    else:
        _prepare(folder, doc, command)
    result = _run(folder, command)
    assert result.returncode == code, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


_FOLDERS: dict[str, Path] = {}


def _folder(factory: pytest.TempPathFactory, doc: Path) -> Path:
    """One folder per document, shared by its commands in order (a later one may use an earlier output)."""
    if doc.name not in _FOLDERS:
        _FOLDERS[doc.name] = factory.mktemp(doc.stem.replace(".", "_"))
    return _FOLDERS[doc.name]


@pytest.mark.parametrize("doc", [d for d in DOCS if _python_blocks(d)], ids=lambda d: d.name)
def test_documented_python_runs(doc: Path, tmp_path) -> None:
    for block in _python_blocks(doc):
        code = block.replace("/tmp/", f"{tmp_path}/")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, timeout=600)


def test_every_documented_file_name_has_a_stand_in() -> None:
    """A document showing a file this test does not know would not really be run."""
    missing = []
    for doc, command, _ in CASES:
        words = shlex.split(command)[1:]
        known = _stand_ins(doc)
        for i, word in enumerate(words[1:], start=1):
            name = word.rstrip("/")
            named = re.fullmatch(r"[\w.-]+\.(keras|h5|onnx|tflite|json|yaml|npz|pb)|\w+_dir", name)
            written = (words[0] in ("convert",) and i == 2) or words[i - 1] in ("-o", "--output", "--junit")
            if named and name not in known and not written and not name.startswith("fixtures"):
                missing.append(f"{doc.name}: {name}")
    assert missing == []
