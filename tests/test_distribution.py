"""The package index name: `modeltool` on PyPI is an unrelated project (0.8.5, 2020). This project is
distributed as `modeltool-tf`, and no document or message tells anyone to install `modeltool`."""

from __future__ import annotations

import re

import tomllib

from modeltool.deps import DISTRIBUTION, require
from modeltool.errors import MissingDependencyError
from tests.conftest import ROOT

#: `pip install modeltool`, `pip install "modeltool[all]"`, `pip install 'modeltool[gpu]'`
OTHER_PROJECT = re.compile(r"""pip3?\s+install\s+(?:-\S+\s+)*["']?modeltool(?:\[|["'\s]|$)""", re.M)


def test_distribution_name_is_ours() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "modeltool-tf"
    assert project["scripts"]["modeltool"] == "modeltool.cli:run"  # the command keeps its name
    extras = " ".join(" ".join(v) for v in project["optional-dependencies"].values())
    assert "modeltool[" not in extras and "modeltool-tf[" in extras


BINARY_SUFFIXES = {".png", ".jpg", ".gif"}


def test_no_document_installs_the_other_project() -> None:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*"), *(ROOT / "modeltool").rglob("*.py"), ROOT / ".ci/run"]
    texts = [f for f in files if f.is_file() and f.suffix not in BINARY_SUFFIXES]  # screenshots hold no commands
    offenders = [str(f.relative_to(ROOT)) for f in texts if OTHER_PROJECT.search(f.read_text(encoding="utf-8"))]
    assert offenders == []
    assert OTHER_PROJECT.search('run: pip install "modeltool[all]"')  # the pattern finds what it must


def test_missing_dependency_names_our_distribution() -> None:
    try:
        require("modeltool_no_such_module_xyz")
    except MissingDependencyError as exc:
        assert f"pip install '{DISTRIBUTION}[all]'" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no error")
