"""`modeltool transfer-weights SRC DST -o OUT`: weights by layer name into another architecture."""

from __future__ import annotations

import click

from modeltool.cli.output import emit


@click.command("transfer-weights")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("-o", "--output", "out", type=click.Path(path_type=str), default=None,
              help="Where to write: .keras, .h5 or .weights.h5 (Keras 3 loads each).")
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW",
              help="Rename source layers (repeatable; OLD is a regular expression over layer paths or names).")
@click.option("--strict", is_flag=True, help="Exit 1 (and write nothing) unless every weight is transferred.")
@click.option("--dry-run", is_flag=True, help="Report the matching; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite an existing OUT.")
@click.option("--config", "--src-config", "src_config", type=click.Path(path_type=str), default=None,
              help="Architecture of a checkpoint SRC (JSON/YAML/H5/.keras).")
@click.option("--weights-from", type=click.Path(path_type=str), default=None,
              help="Weights of a JSON/YAML SRC architecture.")
@click.option("--custom-objects", type=click.Path(path_type=str), default=None,
              help="Accepted like every command's; transfer-weights never builds the model (no code runs).")
@click.option("--unsafe", is_flag=True, help="Accepted like every command's; transfer-weights runs no model code.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights initialized fresh.")
@click.option("--allow-empty", is_flag=True,
              help="Write OUT even when no weight matched (otherwise exit 1, nothing written).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
def transfer_cmd(src: str, dst: str, out: str | None, maps: tuple[str, ...], strict: bool, dry_run: bool,
                 force: bool, src_config: str | None, weights_from: str | None, custom_objects: str | None,
                 unsafe: bool, seed: int, allow_empty: bool, as_json: bool, quiet: bool) -> None:  # fmt: skip
    """Put SRC's weights into DST's architecture, matched by layer name (nested models by path) and
    weight role. Shape mismatches are skipped and reported; layers DST has and SRC lacks keep DST's
    weights or are initialized fresh from their initializers. No TensorFlow for H5/.keras/configs."""
    from modeltool.ops.transfer import transfer_weights

    report = transfer_weights(src, dst, out, maps=maps, strict=strict, dry_run=dry_run, force=force,
                              src_config=src_config, src_weights=weights_from, seed=seed,
                              allow_empty=allow_empty)  # fmt: skip
    why = "no weight was transferred (--allow-empty to write anyway)" if report.empty else (
        "not every weight was transferred (--strict)")
    emit(report, as_json, f"{src}: {why}; nothing written", quiet=quiet)
