"""Flags shared by the commands, declared once so every command spells them the same, and turned
into the operation's one immutable options value (`modeltool.options`) in one place.

- model flags (every command that reads a model): how to read and run it;
- comparison flags (`convert`, `verify`, `extract`, `check`): inputs, tolerances, device;
- `--reference writer|rebuild` (`convert`, `verify`): what computes a Keras 1/2 file's reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from modeltool.options import option_fields, parse_fixed, parse_shapes

F = Callable[..., Any]

REQUIRED = " [required]"


def _apply(f: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def keras_model_options(f: F) -> F:
    """--custom-objects, --unsafe, --weights-from, --config: what reading a Keras model may need."""
    return _apply(f, [
        click.option("--custom-objects", type=click.Path(path_type=str), default=None,
                     help="Your Python module defining the model's custom layers (imported: your code)."),
        click.option("--unsafe", is_flag=True,
                     help="Allow running Python code stored in the model (Lambda layers); only for files you trust."),
        click.option("--trust", "trust", multiple=True, metavar="PKG",
                     help="Also trust this installed package's registered Keras classes, as keras_hub, keras_nlp, "
                          "keras_cv and keras_rs are by default (repeatable; imports PKG, never a module the file "
                          "names)."),
        click.option("--weights-from", type=click.Path(path_type=str), default=None,
                     help="Weights (H5 / .weights.h5) for a JSON/YAML architecture."),
        click.option("--config", type=click.Path(path_type=str), default=None,
                     help="Keras architecture (.json/.yaml/.h5/.keras) for a checkpoint's variables."),
    ])  # fmt: skip


def graph_boundary_options(f: F) -> F:
    """--inputs, --outputs: the boundary of a frozen GraphDef or TF1 checkpoint graph."""
    return _apply(f, [
        click.option("--inputs", default=None, metavar="NAME[=SHAPE],..",
                     help="Frozen GraphDef / TF1 checkpoint inputs (default: the Placeholders), a shape after = "
                          "(dims joined by x, ? open, () a scalar), e.g. "
                          "X=1x784,keep_prob=() (a name may hold ':', as in keep_prob:0)."),
        click.option("--outputs", default=None, metavar="NAME,..",
                     help="Frozen GraphDef / TF1 checkpoint outputs (default: detected), with or without :0."),
    ])  # fmt: skip


def fixed_input_option(f: F) -> F:
    """--fix-input NAME=VALUE: a graph placeholder baked in as a constant (runs and conversions)."""
    return click.option("--fix-input", "fixed_inputs", multiple=True, metavar="NAME=VALUE",
                        help="Frozen GraphDef / TF1 checkpoint: replace a Placeholder by a constant, e.g. a "
                             "dropout's keep_prob=1.0 (repeatable).")(f)  # fmt: skip


def graph_model_options(f: F) -> F:
    """--inputs, --outputs, --signature: the boundary of a TF graph file."""
    return _apply(fixed_input_option(graph_boundary_options(f)), [
        click.option("--signature", default=None,
                     help="SavedModel signature (default serving_default, else the only one)."),
    ])  # fmt: skip


def model_options(f: F) -> F:
    """Every model flag: commands that read models of any format."""
    return keras_model_options(graph_model_options(f))


def comparison_options(f: F) -> F:
    """--atol/--rtol/--input/--seed/--batch/--device/--input-shape."""
    return _apply(f, [
        click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-4 for float targets)."),
        click.option("--rtol", type=float, default=None, help="Relative tolerance (default 1e-3 for float targets)."),
        click.option("--input", "input_data", type=click.Path(path_type=str), default=None,
                     help="Inputs as .npz (arrays keyed by input name, or arr_0.. by position)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs."),
        click.option("--batch", type=int, default=2, show_default=True, help="Batch size of the random inputs."),
        click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
                     help="onnxruntime device: cuda needs the 'gpu' extra; auto uses CUDA when present."),
        click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..",
                     help="Fix an input's shape (repeatable), e.g. input_1=1,224,224,3; ? keeps a dim dynamic."),
    ])  # fmt: skip


def reference_option(f: F) -> F:
    """--reference writer|rebuild: what computes the reference numbers of a Keras 1/2 file."""
    return click.option(
        "--reference", "reference_mode", type=click.Choice(["writer", "rebuild"]), default=None,
        help="Keras 1/2 files: compute the reference in the runtime that wrote them (tf_keras; the default when "
        "installed) or in modeltool's Keras 3 rebuild.",
    )(f)  # fmt: skip


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the whole result as one JSON object.")(f)


def options_from(cls: type, values: dict[str, Any], **extra: Any) -> Any:
    """The options value of class `cls` from a command's flag values (flags it lacks are ignored)."""
    names = set(option_fields(cls))
    kwargs = {k: v for k, v in {**values, **extra}.items() if k in names}
    if "input_shapes" in kwargs and not isinstance(kwargs["input_shapes"], dict):
        kwargs["input_shapes"] = parse_shapes(kwargs["input_shapes"] or ())
    if "fixed_inputs" in kwargs and not isinstance(kwargs["fixed_inputs"], dict):
        kwargs["fixed_inputs"] = parse_fixed(kwargs["fixed_inputs"] or ())
    return cls(**kwargs)
