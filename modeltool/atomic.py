"""Outputs appear whole or not at all: written beside the destination, renamed on success.

A conversion that fails or is killed leaves either nothing at DST or the previous file intact;
temporary names carry the process id and a random part, so parallel runs never collide."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from modeltool.errors import UsageError


def check_destination(dst: str, force: bool) -> None:
    """An existing DST is only replaced with --force; its folder must exist."""
    parent = os.path.dirname(os.path.abspath(dst)) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"{dst}: folder {parent} does not exist")
    if os.path.lexists(dst) and not force:
        raise UsageError(f"{dst}: already exists; pass --force to overwrite it")


def temp_name(dst: str) -> str:
    """A unique sibling of `dst` that keeps its suffixes (Keras insists on `.keras`/`.h5`)."""
    head, base = os.path.split(os.path.abspath(dst.rstrip("/")))
    stem, dot, suffix = base.partition(".")
    tag = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return os.path.join(head, f".{stem}{tag}{dot}{suffix}")


@contextmanager
def atomic_path(dst: str, *, force: bool = False) -> Iterator[str]:
    """Yield a temporary path for a file or directory; move it to `dst` when the block succeeds."""
    dst = dst.rstrip("/") or dst
    check_destination(dst, force)
    tmp = temp_name(dst)
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise UsageError(f"{dst}: the exporter wrote nothing")
        replace(tmp, dst)
    finally:
        remove(tmp)


def replace(src: str, dst: str) -> None:
    """Rename `src` onto `dst`; a directory replaces a directory (old one removed after)."""
    if os.path.isdir(src) and os.path.lexists(dst):
        old = temp_name(dst)
        os.rename(dst, old)
        os.rename(src, dst)
        remove(old)
    else:
        os.replace(src, dst)


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
