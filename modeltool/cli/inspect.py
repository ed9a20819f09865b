"""`modeltool inspect PATH`: what a model file holds, without TensorFlow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modeltool.cli.options import graph_boundary_options, keras_model_options
from modeltool.cli.output import echo_json

if TYPE_CHECKING:
    from modeltool.ir import Model


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--weights", "show_weights", is_flag=True, help="List every weight (name, layer, shape, dtype).")
@click.option("--stats", is_flag=True, help="Add min/max/mean/std and NaN/Inf counts (reads the values).")
@click.option("--layer", "layer", default=None, help="Show one layer in full, by name, path or index.")
@click.option("--infer-shapes", is_flag=True,
              help="ONNX: add intermediate shapes the file does not state (onnx's shape inference; imports onnx).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing: exit 0 when the file reads as a model, 2 when not.")
@click.option("--html", "html", type=click.Path(path_type=str), default=None, metavar="FILE",
              help="Also write the model as a graph in one self-contained HTML page (no TensorFlow, no network).")
@click.option("--force", is_flag=True, help="Overwrite an existing --html file.")
@keras_model_options
@graph_boundary_options
def inspect_cmd(
    path: str, as_json: bool, show_weights: bool, stats: bool, layer: str | None, weights_from: str | None,
    inputs: str | None, outputs: str | None, config: str | None, custom_objects: str | None, unsafe: bool,
    trust: tuple[str, ...],
    infer_shapes: bool, quiet: bool, html: str | None, force: bool,
) -> None:  # fmt: skip
    """Summarize a model file: format, writer, inputs, outputs, layers, parameters.

    Reads Keras H5 (1/2/3), .keras, .weights.h5, JSON/YAML configs, ONNX, TFLite, SavedModels,
    checkpoints and frozen GraphDefs without importing TensorFlow. Lambda bytecode and custom
    objects are shown, never executed. With --custom-objects (your module, imported), custom layers
    get the output shapes and parameter counts Keras computes for them (Keras is imported then).
    --html FILE draws the graph (nested models and name scopes collapsible, figures on each node).
    """
    from modeltool.errors import UsageError
    from modeltool.loaders import load, source_options
    from modeltool.ops.summary import layer_detail, model_to_dict, render_layer, render_summary, render_weights

    options = source_options(weights_from=weights_from, inputs=inputs, outputs=outputs, config=config,
                             infer_shapes=infer_shapes)  # fmt: skip
    model = load(path, **options)
    from modeltool.keras.probe import show_library_inside

    if show_library_inside(model, trust, custom_objects):
        pass
    elif custom_objects:
        from modeltool.keras.probe import fill_from_keras
        from modeltool.keras.rebuild import load_custom_objects

        fill_from_keras(model, load_custom_objects(custom_objects), unsafe=unsafe)
    if html:
        from modeltool.report.html import write_report
        from modeltool.report.payload import from_model

        write_report(from_model(model), html, force=force)
    if quiet:
        return
    if layer is not None:
        if not model.layers:
            kind = model.metadata.format_description
            raise UsageError(f"{path}: no layer {layer!r}: the file has no layer architecture ({kind})")
        key: str | int = int(layer) if layer.lstrip("-").isdigit() else layer
        try:
            detail = layer_detail(model, key, stats=stats)
        except IndexError:
            raise UsageError(f"{path}: layer index {layer} is out of range: {_count_layers(model)}") from None
        except KeyError:
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
    click.echo(render_summary(model))
    if show_weights or stats:
        click.echo(render_weights(model, stats))


def _count_layers(model: Model) -> str:
    """How many top-level layers (or ops) an index can pick from."""
    n = len(model.layers)
    kind = "ops" if model.graph is not None and model.graph.level == "op" else "layers"
    return f"the model has {n} top-level {kind} (indices 0 to {n - 1})"
