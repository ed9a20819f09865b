"""Printing reports: JSON for machines (`--json`), text for people."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def _default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as strings so every parser reads the output."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(_finite(obj), indent=2, default=_default, allow_nan=False))


def emit(report: Any, as_json: bool, failure: str, *, quiet: bool = False) -> None:
    """Print a report (JSON or its text table; nothing with `quiet`); a report that did not pass is
    exit 1, with `failure` as its one stderr line."""
    from modeltool.errors import CheckFailed

    if as_json:
        echo_json(report.to_dict())
    elif not quiet:
        click.echo(report.render())
    if not report.passed:
        raise CheckFailed(failure)
