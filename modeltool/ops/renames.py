"""`--map OLD=NEW`: layer renames between two models, shared by `transfer-weights` and `diff`."""

from __future__ import annotations

import re

from modeltool.errors import UsageError

Rules = list[tuple[re.Pattern[str], str]]


def parse_maps(values: list[str] | tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    """`OLD=NEW` pairs; OLD is a regular expression matched against whole source layer paths."""
    out = []
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old:
            raise UsageError(f"--map {value!r}: expected OLD=NEW (e.g. fc1=dense_1 or 'block(\\d)_conv=conv\\1')")
        try:
            out.append((re.compile(old), new))
        except re.error as exc:
            raise UsageError(f"--map {value!r}: bad regular expression ({exc})") from exc
    return out


def renamed(path: str, maps: list[tuple[re.Pattern[str], str]]) -> str:
    """`path` after the first rule that matches it whole, or its last part (a layer name)."""
    for pattern, new in maps:
        if pattern.fullmatch(path):
            return pattern.sub(new, path, count=1) if pattern.pattern != path else new
        leaf = path.rsplit("/", 1)[-1]
        if pattern.fullmatch(leaf):
            return path[: len(path) - len(leaf)] + pattern.sub(new, leaf, count=1)
    return path
