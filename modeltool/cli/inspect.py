"""`modeltool inspect PATH`: what a model file holds, without TensorFlow."""

from __future__ import annotations

import click

from modeltool.cli.options import inspect_source_options
from modeltool.cli.output import echo_json


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--weights", "show_weights", is_flag=True, help="List every weight (name, layer, shape, dtype).")
@click.option("--stats", is_flag=True, help="Add min/max/mean/std and NaN/Inf counts (reads the values).")
@click.option("--layer", "layer", default=None, help="Show one layer in full, by name, path or index.")
@click.option(
    "--weights-from",
    type=click.Path(path_type=str),
    default=None,
    help="Weights file (H5 / .weights.h5) to attach to a JSON/YAML architecture.",
)
@inspect_source_options
def inspect_cmd(
    path: str, as_json: bool, show_weights: bool, stats: bool, layer: str | None, weights_from: str | None,
    graph_inputs: str | None, graph_outputs: str | None, arch_config: str | None,
) -> None:  # fmt: skip
    """Summarize a model file: format, writer, inputs, outputs, layers, parameters.

    Reads Keras H5 (1/2/3), .keras, .weights.h5, JSON/YAML configs, ONNX, TFLite, SavedModels,
    checkpoints and frozen GraphDefs without importing TensorFlow. Lambda bytecode and custom
    objects are shown, never executed.
    """
    from modeltool.errors import UsageError
    from modeltool.loaders import load, source_options
    from modeltool.ops.summary import layer_detail, model_to_dict, render_layer, render_weights

    options = source_options(weights_from=weights_from, inputs=graph_inputs, outputs=graph_outputs, config=arch_config)
    model = load(path, **options)
    if layer is not None:
        key: str | int = int(layer) if layer.lstrip("-").isdigit() else layer
        try:
            detail = layer_detail(model, key, stats=stats)
        except (KeyError, IndexError):
            names = ", ".join(n.name for n in model.layers[:20]) + (" ..." if len(model.layers) > 20 else "")
            raise UsageError(f"{path}: no layer {layer!r} (layers: {names})") from None
        if as_json:
            echo_json(detail)
        else:
            click.echo(render_layer(detail))
        return
    if as_json:
        echo_json(model_to_dict(model, weights=show_weights, stats=stats))
        return
    click.echo(model.summary())
    if show_weights or stats:
        click.echo(render_weights(model, stats))
