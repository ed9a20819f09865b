"""`modeltool diff A B`: architecture and weight differences, across formats."""

from __future__ import annotations

import click

from modeltool.cli.output import emit


@click.command("diff")
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW",
              help="Layers of A renamed in B (repeatable; OLD is a regular expression).")
@click.option("--atol", type=float, default=0.0, show_default=True,
              help="Weights whose values differ by at most this much count as equal.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as one JSON object.")
def diff_cmd(a: str, b: str, maps: tuple[str, ...], atol: float, as_json: bool) -> None:
    """Compare A and B: layers added, removed, renamed (--map) or changed (with the changed config
    keys), and weights whose shape or values differ. Exit 0 when equal, 1 when different."""
    from modeltool.ops.diff import diff_files

    emit(diff_files(a, b, maps=maps, atol=atol), as_json, "")  # a difference is the result, not an error
