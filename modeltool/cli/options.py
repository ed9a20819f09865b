"""Options shared by `convert` and `verify`, declared once so both spell them the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


def comparison_options(f: F) -> F:
    """--atol/--rtol/--input/--seed/--batch/--device/--input-shape/--custom-objects/--unsafe/--json."""
    for decorator in reversed([
        click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-4)."),
        click.option("--rtol", type=float, default=None, help="Relative tolerance (default 1e-3)."),
        click.option("--input", "input_data", type=click.Path(path_type=str), default=None,
                     help="Inputs as .npz (arrays keyed by input name, or arr_0.. by position)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs."),
        click.option("--batch", type=int, default=2, show_default=True, help="Batch size of the random inputs."),
        click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
                     help="onnxruntime device: cuda needs the 'gpu' extra; auto uses CUDA when present."),
        click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME:D1,D2,..",
                     help="Fix an input's shape (repeatable), e.g. input_1:1,224,224,3; ? keeps a dim dynamic."),
        click.option("--custom-objects", type=click.Path(path_type=str), default=None,
                     help="Your Python module defining the model's custom layers."),
        click.option("--unsafe", is_flag=True, help="Allow running Python code stored in the model (Lambda layers)."),
        click.option("--json", "as_json", is_flag=True, help="Print the whole result as one JSON object."),
    ]):  # fmt: skip
        f = decorator(f)
    return f


def reference_option(f: F) -> F:
    """--reference writer|rebuild: what computes the reference numbers of a Keras 1/2 file."""
    return click.option(
        "--reference", "reference_mode", type=click.Choice(["writer", "rebuild"]), default=None,
        help="Keras 1/2 files: compute the reference in the runtime that wrote them (tf_keras; the default when "
        "installed) or in modeltool's Keras 3 rebuild.",
    )(f)  # fmt: skip


def source_options(f: F, *, signature: bool = True) -> F:
    """--inputs/--outputs (GraphDef, TF1 checkpoint), --config (checkpoint architecture), --signature."""
    decorators = [
        click.option("--inputs", "graph_inputs", default=None, metavar="NAME[:SHAPE],..",
                     help="Frozen GraphDef / TF1 checkpoint inputs (default: the Placeholders), e.g. X:1x784."),
        click.option("--outputs", "graph_outputs", default=None, metavar="NAME,..",
                     help="Frozen GraphDef / TF1 checkpoint outputs (default: detected), with or without :0."),
        click.option("--config", "arch_config", type=click.Path(path_type=str), default=None,
                     help="Keras architecture (.json/.yaml/.h5/.keras) for a checkpoint's variables."),
    ]
    if signature:
        decorators.append(click.option("--signature", default=None,
                                       help="SavedModel signature (default serving_default, else the only one)."))
    for decorator in reversed(decorators):  # fmt: skip
        f = decorator(f)
    return f


def inspect_source_options(f: F) -> F:
    """`inspect` shows every signature, so it takes the boundary and architecture options only."""
    return source_options(f, signature=False)
