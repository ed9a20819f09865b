"""`modeltool verify A B`: run two models on the same inputs and compare every output."""

from __future__ import annotations

import click

from modeltool.cli.options import comparison_options, reference_option, source_options
from modeltool.cli.output import emit


@click.command("verify")
@click.argument("reference", type=click.Path(path_type=str))
@click.argument("target", type=click.Path(path_type=str))
@click.option(
    "--quantized",
    type=click.Choice(["float16", "dynamic", "int8"]),
    default=None,
    help="Use the looser default tolerances of a quantized target.",
)
@comparison_options
@reference_option
@source_options
def verify_cmd(reference: str, target: str, signature: str | None, quantized: str | None, atol: float | None,
               rtol: float | None, input_data: str | None, seed: int, batch: int, device: str,
               input_shapes: tuple[str, ...], custom_objects: str | None, unsafe: bool,
               reference_mode: str | None, as_json: bool, graph_inputs: str | None, graph_outputs: str | None,
               arch_config: str | None) -> None:  # fmt: skip
    """Compare REFERENCE and TARGET (any runnable formats). Exit 0 on match, 1 on mismatch,
    2 when their inputs/outputs cannot be paired or a file is unusable."""
    from modeltool.convert import tolerance_for
    from modeltool.exporters.serving import parse_shapes
    from modeltool.keras.rebuild import load_custom_objects
    from modeltool.verify import verify_files

    report = verify_files(
        reference, target, tolerance=tolerance_for(quantized, atol, rtol), input_data=input_data, seed=seed,
        batch=batch, shapes=parse_shapes(input_shapes), device=device,
        custom_objects=load_custom_objects(custom_objects), unsafe=unsafe, signature=signature,
        inputs=graph_inputs, outputs=graph_outputs, config=arch_config, reference_mode=reference_mode,
    )  # fmt: skip
    emit(report, as_json, f"{target}: outputs differ from {reference}")
