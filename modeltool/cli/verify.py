"""`modeltool verify A B`: run two models on the same inputs and compare every output."""

from __future__ import annotations

from typing import Any

import click

from modeltool.cli.options import comparison_options, json_option, model_options, options_from, reference_option
from modeltool.cli.output import emit


@click.command("verify")
@click.argument("reference", type=click.Path(path_type=str))
@click.argument("target", type=click.Path(path_type=str))
@click.option(
    "--quantized",
    type=click.Choice(["float16", "dynamic", "int8"]),
    default=None,
    help="Tolerances of this quantization (default: what TARGET's file holds, detected).",
)
@click.option("--localize", is_flag=True,
              help="Compare every intermediate tensor: the first layer whose output leaves the tolerance.")
@click.option("--html", type=click.Path(path_type=str), default=None,
              help="Write the comparison as a self-contained HTML report (the graph coloured by error).")
@click.option("--force", is_flag=True, help="Overwrite an existing --html file.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
@comparison_options
@reference_option
@model_options
@json_option
def verify_cmd(reference: str, target: str, quiet: bool, as_json: bool, **flags: Any) -> None:
    """Compare REFERENCE and TARGET (any runnable formats). Exit 0 on match, 1 on mismatch,
    2 when their inputs/outputs cannot be paired or a file is unusable."""
    from modeltool.options import VerifyOptions
    from modeltool.verify import verify_files

    report = verify_files(reference, target, options_from(VerifyOptions, flags))
    emit(report, as_json, f"{target}: outputs differ from {reference}", quiet=quiet)
