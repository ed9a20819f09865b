"""`modeltool diff A B`: architecture and weight differences, across formats."""

from __future__ import annotations

from typing import Any

import click

from modeltool.cli.options import json_option, model_options, options_from
from modeltool.cli.output import emit


@click.command("diff")
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW",
              help="Layers of A renamed in B (repeatable; OLD is a regular expression).")
@click.option("--atol", type=float, default=0.0, show_default=True,
              help="Weights whose values differ by at most this much count as equal.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing (the exit code tells the result).")
@model_options
@json_option
def diff_cmd(a: str, b: str, maps: tuple[str, ...], atol: float, quiet: bool, as_json: bool, **flags: Any) -> None:
    """Compare A and B: layers added, removed, renamed (--map) or changed (with the changed config
    keys), and weights whose shape or values differ. Exit 0 when equal, 1 when different. Never
    runs model code (--custom-objects and --unsafe are accepted for symmetry and unused)."""
    from modeltool.ops.diff import diff_files
    from modeltool.options import SourceOptions

    report = diff_files(a, b, maps=maps, atol=atol, options=options_from(SourceOptions, flags))
    emit(report, as_json, "", quiet=quiet)  # a difference is the result, not an error
