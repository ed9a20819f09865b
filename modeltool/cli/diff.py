"""`modeltool diff A B`: architecture and weight differences, across formats."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from modeltool.cli.options import json_option, model_options, options_from
from modeltool.cli.output import emit

if TYPE_CHECKING:
    pass


@click.command("diff")
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW",
              help="Layers of A renamed in B (repeatable; OLD is a regular expression).")
@click.option("--atol", type=float, default=0.0, show_default=True,
              help="Weights whose values differ by at most this much count as equal.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing (the exit code tells the result).")
@click.option("--html", "html", type=click.Path(path_type=str), default=None, metavar="FILE",
              help="Also write B's graph with the added, removed and changed layers marked, as one "
                   "self-contained HTML page.")
@click.option("--force", is_flag=True, help="Overwrite an existing --html file.")
@model_options
@json_option
def diff_cmd(a: str, b: str, maps: tuple[str, ...], atol: float, quiet: bool, as_json: bool, html: str | None,
             force: bool, **flags: Any) -> None:  # fmt: skip
    """Compare A and B: layers added, removed, renamed (--map) or changed (with the changed config
    keys), and weights whose shape or values differ. Exit 0 when equal, 1 when different. Never
    runs model code (--custom-objects and --unsafe are accepted for symmetry and unused)."""
    from modeltool.ops.diff import diff_models, read_side
    from modeltool.options import SourceOptions

    options = options_from(SourceOptions, flags)
    model_a, model_b = read_side(a, options), read_side(b, options)
    report = diff_models(model_a, model_b, maps=maps, atol=atol)
    if html:
        from modeltool.report.html import write_report
        from modeltool.report.payload import from_diff

        write_report(from_diff(report, model_a, model_b), html, force=force)
    emit(report, as_json, "", quiet=quiet)  # a difference is the result, not an error
