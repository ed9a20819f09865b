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
@click.option("--quantize", type=click.Choice(["float16", "dynamic", "int8"]), default=None,
              help="ONNX/TFLite: quantization (float16 weights and compute, dynamic int8 weights, static int8).")
@click.option("--calibration", type=click.Path(path_type=str), default=None,
              help="int8: calibration inputs (.npz, arrays keyed by input name).")
@click.option("--calibration-method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None,
              help="ONNX int8: how activation ranges are calibrated (default minmax).")
@click.option("--no-keep-io-types", "keep_io_types", is_flag=True, flag_value=False, default=True,
              help="ONNX float16: float16 inputs and outputs too (default: they stay float32).")
@click.option("--inputs-as-nchw", "inputs_as_nchw", default=None, metavar="NAME[,NAME]",
              help="ONNX: these inputs are channels-first (the transposes this creates are cancelled).")
@click.option("--outputs-as-nchw", "outputs_as_nchw", default=None, metavar="NAME[,NAME]",
              help="ONNX: these outputs are channels-first.")
@click.option("--optimize", is_flag=True, help="ONNX: constant folding, dead-node removal, operator fusion.")
@click.option("--external-data", "external_data", type=click.Choice(["single", "per-tensor"]), default=None,
              help="ONNX: weights in external data whatever their size (automatic over protobuf's 2 GB): one "
                   "sidecar file DST.data, or one file per tensor in the folder DST.data.d/.")
@click.option("--via", type=click.Choice(["auto", "direct", "tf"]), default="auto", show_default=True,
              help="ONNX and TFLite: direct (from the IR, no TensorFlow), tf (tf2onnx / the TFLite converter), "
                   "auto (direct when it covers the model).")
@click.option("--localize", is_flag=True, help="When verification fails, find the first layer that diverges.")
@click.option("--html", type=click.Path(path_type=str), default=None,
              help="Write the verification (and localization) as a self-contained HTML report.")
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

    for key in ("inputs_as_nchw", "outputs_as_nchw"):
        flags[key] = tuple(n.strip() for n in (flags.get(key) or "").split(",") if n.strip())
    options = options_from(ConvertOptions, flags, verify=not no_verify)
    show = not quiet and not as_json and sys.stderr.isatty()
    report = convert(src, dst, options, progress=(lambda s: click.echo(f"[{s}] ...", err=True)) if show else None)
    emit(report, as_json, f"{dst}: verification failed; nothing written", quiet=quiet)
