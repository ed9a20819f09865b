"""Shared test helpers: fixture manifest, corpus location, running the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CORPUS = Path(os.environ.get("MODELTOOL_CORPUS", ROOT.parent / "shared" / "corpus"))


def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


def fixture_files(kinds: tuple[str, ...] | None = None) -> list[tuple[str, str, Path]]:
    """(model id, file kind, path) for every committed fixture file."""
    out = []
    for mid, entry in sorted(manifest().items()):
        for kind, rel in sorted(entry["files"].items()):
            if kinds is None or kind in kinds:
                out.append((mid, kind, FIXTURES / rel))
    return out


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real `modeltool` entry point in a fresh interpreter."""
    cmd = [sys.executable, "-m", "modeltool", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


requires_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus folder {CORPUS} is absent")
