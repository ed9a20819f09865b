"""`modeltool convert SRC DST`: convert to ONNX, TFLite, SavedModel, frozen GraphDef or Keras, verified."""

from __future__ import annotations

import sys
from typing import Any

import click

from modeltool.cli.options import comparison_options, json_option, model_options, options_from, reference_option
from modeltool.cli.output import emit


@click.command("convert")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option(
    "--to", default=None, help="Target: onnx, tflite, savedmodel, pb, keras, h5, weights.h5, json, yaml, checkpoint."
)
@click.option("--force", is_flag=True, help="Overwrite an existing DST.")
@click.option(
    "--opset", type=int, default=None, help="ONNX: opset (default: newest both tf2onnx and onnxruntime support)."
)
@click.option(
    "--quantize", type=click.Choice(["float16", "dynamic", "int8"]), default=None, help="TFLite: quantization."
)
@click.option("--calibration", type=click.Path(path_type=str), default=None,
              help="TFLite int8: calibration inputs (.npz).")  # fmt: skip
@click.option("--allow-flex", is_flag=True, help="TFLite: accept Select TF (Flex) ops (not in the stock interpreter).")
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip running source and target on the same inputs.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
@comparison_options
@reference_option
@model_options
@json_option
def convert_cmd(src: str, dst: str, no_verify: bool, quiet: bool, as_json: bool, **flags: Any) -> None:
    """Convert SRC to DST; the target comes from DST's suffix (.onnx .tflite .pb .keras .h5 .weights.h5
    .json .yaml .ckpt) or a trailing / (SavedModel). The result is verified against SRC (exit 1 on a
    mismatch, nothing written) and written atomically."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    options = options_from(ConvertOptions, flags, verify=not no_verify)
    show = not quiet and not as_json and sys.stderr.isatty()
    report = convert(src, dst, options, progress=(lambda s: click.echo(f"[{s}] ...", err=True)) if show else None)
    emit(report, as_json, f"{dst}: verification failed; nothing written", quiet=quiet)
