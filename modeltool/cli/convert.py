"""`modeltool convert SRC DST`: convert to ONNX, TFLite, SavedModel or Keras, verified."""

from __future__ import annotations

import sys

import click

from modeltool.cli.options import comparison_options, reference_option, source_options
from modeltool.cli.output import emit


@click.command("convert")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option(
    "--to", default=None, help="Target: onnx, tflite, savedmodel, pb, keras, h5, weights.h5, json, yaml, checkpoint."
)
@click.option("--force", is_flag=True, help="Overwrite an existing DST.")
@click.option(
    "--opset", type=int, default=None, help="ONNX opset (default: newest both tf2onnx and onnxruntime support)."
)
@click.option(
    "--quantize", type=click.Choice(["float16", "dynamic", "int8"]), default=None, help="TFLite quantization."
)
@click.option("--calibration", type=click.Path(path_type=str), default=None, help="int8 calibration inputs (.npz).")
@click.option("--allow-flex", is_flag=True, help="TFLite: accept Select TF (Flex) ops (not in the stock interpreter).")
@click.option("--no-verify", "no_verify", is_flag=True, help="Skip running source and target on the same inputs.")
@click.option("--weights-from", type=click.Path(path_type=str), default=None, help="Weights for a JSON/YAML SRC.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@comparison_options
@reference_option
@source_options
def convert_cmd(src: str, dst: str, to: str | None, force: bool, opset: int | None, quantize: str | None,
                calibration: str | None, allow_flex: bool, no_verify: bool, weights_from: str | None, quiet: bool,
                atol: float | None, rtol: float | None, input_data: str | None, seed: int, batch: int, device: str,
                input_shapes: tuple[str, ...], custom_objects: str | None, unsafe: bool,
                reference_mode: str | None, as_json: bool,
                graph_inputs: str | None, graph_outputs: str | None, arch_config: str | None,
                signature: str | None) -> None:  # fmt: skip
    """Convert SRC to DST; the target comes from DST's suffix (.onnx .tflite .pb .keras .h5 .weights.h5
    .json .yaml .ckpt) or a trailing / (SavedModel). The result is verified against SRC (exit 1 on a
    mismatch, nothing written) and written atomically."""
    from modeltool.convert import ConvertOptions, convert
    from modeltool.exporters.serving import ExportOptions, parse_shapes

    export_options = ExportOptions(
        opset=opset, input_shapes=parse_shapes(input_shapes), quantize=quantize, calibration=calibration,
        allow_flex=allow_flex, device=device, seed=seed,
    )  # fmt: skip
    options = ConvertOptions(
        to=to, force=force, verify=not no_verify, custom_objects=custom_objects, unsafe=unsafe,
        weights_from=weights_from, atol=atol, rtol=rtol, input_data=input_data, batch=batch,
        signature=signature, inputs=graph_inputs, outputs=graph_outputs, config=arch_config,
        reference=reference_mode,
    )  # fmt: skip
    if allow_flex and not quiet:
        click.echo("modeltool: warning: --allow-flex: the result may need the Flex delegate to run", err=True)
    show = not quiet and not as_json and sys.stderr.isatty()
    report = convert(
        src, dst, options, export_options, progress=(lambda s: click.echo(f"[{s}] ...", err=True)) if show else None
    )
    emit(report, as_json, f"{dst}: verification failed; nothing written")
