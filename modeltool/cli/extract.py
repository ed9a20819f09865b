"""`modeltool extract SRC --outputs L1[,L2] [--inputs L0] -o OUT`: a verified sub-model."""

from __future__ import annotations

from typing import Any

import click

from modeltool.cli.options import comparison_options, json_option, keras_model_options, options_from
from modeltool.cli.output import emit


@click.command("extract")
@click.argument("src", type=click.Path(path_type=str))
@click.option("--outputs", "outputs", required=True, metavar="L1[,L2]",
              help="Layers whose outputs the sub-model returns (name, nested path, or layer@N for call N).")
@click.option("--inputs", "inputs", default=None, metavar="L0[,..]",
              help="Layers whose outputs become the sub-model's new inputs (default: the model's inputs).")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=str),
              help="Where to write it: any target of convert (.keras .h5 .onnx .tflite .pb dir/ ...).")
@click.option("--force", is_flag=True, help="Overwrite an existing OUT.")
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip comparing with the original's activations.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
@comparison_options
@keras_model_options
@json_option
def extract_cmd(src: str, outputs: str, inputs: str | None, out: str, no_verify: bool, quiet: bool, as_json: bool,
                **flags: Any) -> None:  # fmt: skip
    """Cut a sub-model out of SRC: the backbone of a classifier, a feature extractor at an
    intermediate layer, or the part between two layers. Its outputs are checked against the
    original model's intermediate activations on the same inputs before OUT is written."""
    from modeltool.ops.extract import extract
    from modeltool.options import ConvertOptions

    options = options_from(ConvertOptions, flags, verify=not no_verify)
    report = extract(src, outputs, out, inputs=inputs, options=options)
    emit(report, as_json, f"{out}: the sub-model does not reproduce the original activations; nothing written",
         quiet=quiet)  # fmt: skip
