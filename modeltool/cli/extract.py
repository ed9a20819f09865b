"""`modeltool extract SRC --outputs L1[,L2] [--inputs L0] -o OUT`: a verified sub-model."""

from __future__ import annotations

import click

from modeltool.cli.options import comparison_options
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
@click.option("--config", "arch_config", type=click.Path(path_type=str), default=None,
              help="Keras architecture for a checkpoint SRC.")
@comparison_options
def extract_cmd(src: str, outputs: str, inputs: str | None, out: str, force: bool, no_verify: bool,
                arch_config: str | None, atol: float | None, rtol: float | None, input_data: str | None, seed: int,
                batch: int, device: str, input_shapes: tuple[str, ...], custom_objects: str | None, unsafe: bool,
                as_json: bool) -> None:  # fmt: skip
    """Cut a sub-model out of SRC: the backbone of a classifier, a feature extractor at an
    intermediate layer, or the part between two layers. Its outputs are checked against the
    original model's intermediate activations on the same inputs before OUT is written."""
    from modeltool.exporters.serving import ExportOptions, parse_shapes
    from modeltool.ops.extract import extract

    report = extract(
        src, outputs, out, inputs=inputs, force=force, verify=not no_verify, custom_objects=custom_objects,
        unsafe=unsafe, config=arch_config, seed=seed, batch=batch, atol=atol, rtol=rtol, input_data=input_data,
        export_options=ExportOptions(input_shapes=parse_shapes(input_shapes), device=device, seed=seed),
    )  # fmt: skip
    emit(report, as_json, f"{out}: the sub-model does not reproduce the original activations; nothing written")
