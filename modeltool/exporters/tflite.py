"""TFLite through TensorFlow's converter: float32, or quantized (float16, dynamic range, int8).

The result must run in the stock LiteRT interpreter, so only builtin ops are allowed unless the
user passes --allow-flex. Keras 3 recurrent layers compile to a while-loop over TensorLists, which
the converter can only express with Select TF (Flex) ops; a Keras source prepared for TFLite is
rebuilt with `unroll=True` (`sources.keras`), a static loop made of builtin ops, which needs a known
number of timesteps (from the model or --input-shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from modeltool.deps import quiet_stderr, require
from modeltool.errors import UnsupportedError, UsageError
from modeltool.ir import Model, TensorSpec
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source

QUANTIZE_MODES = ("float16", "dynamic", "int8")


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """Write `source` as a .tflite file; returns details (quantization, ops, Flex use)."""
    tf = require("tensorflow", "converting to TFLite")
    converter = source.tflite_converter(options)
    specs = source.input_specs(options.input_shapes)
    ir = source.ir
    try:
        return convert_with(tf, converter, path, options, context, lambda: samples_for(specs, ir, options, context),
                            specs)  # fmt: skip
    except TensorListLoop:
        if not hasattr(source, "single_batch_shapes"):
            raise
    # a saved or frozen RNN loop: with the batch known, its tensor lists get static element shapes
    shapes = source.single_batch_shapes(options)
    fixed = replace(options, input_shapes=shapes)
    converter = source.tflite_converter(fixed, static_lists=True)
    specs = source.input_specs(shapes)
    details = convert_with(tf, converter, path, fixed, context, lambda: samples_for(specs, ir, fixed, context), specs)
    opened = sorted(set(shapes) - set(options.input_shapes))
    if opened:
        context.warnings.append(
            f"batch fixed to 1 for {', '.join(opened)}: the graph's recurrent loop over tensor lists becomes builtin "
            "TFLite ops only with a known batch (--input-shape chooses another)"
        )
    return {**details, "recurrent_loop": "tensor lists lowered to builtin ops (static element shapes)"}


class TensorListLoop(UnsupportedError):
    """The converter met a recurrent loop over tensor lists it could not lower to builtin ops."""


#: a flatbuffer addresses its buffers with 32-bit signed offsets: a .tflite file stays under 2 GiB
FLATBUFFER_LIMIT = 1 << 31
#: bytes per float32 weight byte each --quantize kind keeps
QUANTIZED_FRACTION = {None: 1.0, "float16": 0.5, "dynamic": 0.25, "int8": 0.25}


def check_flatbuffer_size(ir: Model, options: ConvertOptions) -> None:
    """Refuse, before TensorFlow is even imported, a model whose weights cannot fit one TFLite
    flatbuffer (the converter would run for minutes and then fail on the 2 GiB offset limit)."""
    import numpy as np

    from modeltool.sizes import format_size

    stored = 0
    for w in ir.weights:
        try:
            stored += w.size * np.dtype(w.dtype).itemsize
        except TypeError:
            continue
    fraction = QUANTIZED_FRACTION.get(options.quantize, 1.0)
    projected = stored * fraction
    if projected >= FLATBUFFER_LIMIT:
        quantized = f" with --quantize {options.quantize}" if options.quantize else ""
        smaller = "" if options.quantize in ("dynamic", "int8") else "; --quantize dynamic or int8 keeps a quarter"
        raise UnsupportedError(
            f"{ir.path}: its weights are {format_size(stored)}, {format_size(projected)} as TFLite{quantized}: "
            f"over the 2 GiB a TFLite flatbuffer can hold{smaller}; convert to ONNX (external data) instead"
        )


def convert_with(
    tf: Any, converter: Any, path: str, options: ConvertOptions, context: ExportContext,
    samples: Callable[[], tuple[list, str]], specs: list[TensorSpec] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run a prepared converter with modeltool's op set and quantization; `samples` gives int8
    calibration data only when asked for."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if options.allow_flex:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    calibration = _quantize(tf, converter, samples, options)
    try:
        with quiet_stderr():  # the converter prints its MLIR diagnostics on fd 2; the error says what failed
            data = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError with MLIR dumps
        raise _converter_error(exc, options, specs or []) from exc
    with open(path, "wb") as f:
        f.write(data)
    from modeltool.loaders.tflite_model import load as load_tflite

    meta = load_tflite(path).metadata.extra
    flex = meta.get("flex_ops") or []
    if flex:
        context.warnings.append(
            f"the model uses Select TF (Flex) ops {', '.join(flex)}: it needs the Flex delegate, not in the stock "
            "LiteRT interpreter (--allow-flex)"
        )
    return {"quantize": options.quantize or "none", "calibration": calibration, "flex_ops": flex, "bytes": len(data)}


def _quantize(
    tf: Any, converter: Any, samples_fn: Callable[[], tuple[list, str]], options: ConvertOptions
) -> str | None:
    mode = options.quantize
    if mode is None or mode == "none":
        return None
    if mode not in QUANTIZE_MODES:
        raise UsageError(f"--quantize {mode}: choose from {', '.join(QUANTIZE_MODES)}")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return None
    if mode == "dynamic":
        return None
    samples, source = samples_fn()
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if options.allow_flex else []
    )
    return source


def samples_for(
    specs: list[TensorSpec], ir: Model | None, options: ConvertOptions, context: ExportContext
) -> tuple[list[list[np.ndarray]], str]:
    """Representative inputs for int8, each a list in input order (what the converter iterates)."""
    from modeltool.feeds import RANDOM_CALIBRATION_WARNING, calibration_feeds

    feeds, source, random = calibration_feeds(options.calibration, specs, ir, options.seed, options.input_shapes)
    if random:
        context.warnings.append(RANDOM_CALIBRATION_WARNING)
    return [[feed[s.name] for s in specs] for feed in feeds], source


def _converter_error(exc: BaseException, options: ConvertOptions, specs: list[TensorSpec]) -> UnsupportedError:
    """What the converter's failure means, as the error to raise (a TensorListLoop for a recurrent
    loop its builtin ops could not take)."""
    text = " ".join(str(exc).split())
    ops = sorted(set(_flex_ops(text)))
    if any(op.startswith(("TensorList", "TensorArray")) for op in ops) and not options.allow_flex:
        return TensorListLoop(
            f"the graph holds a recurrent loop over tensor lists ({', '.join(ops[:4])}), which TFLite lowers to "
            "builtin ops only when their element shapes are static, and this graph leaves them open (a saved or "
            "frozen loop keeps the shapes it was traced with); rerun with --allow-flex to accept Select TF ops, or "
            "convert the Keras file the graph came from (modeltool unrolls its RNN layers into builtin ops)"
        )
    return UnsupportedError(_converter_message(text, ops, options, specs))


def _converter_message(text: str, ops: list[str], options: ConvertOptions, specs: list[TensorSpec]) -> str:
    if ops or "select tf" in text.lower() or "flex" in text.lower():
        hint = "rerun with --allow-flex to accept Select TF ops" if not options.allow_flex else ""
        open_dims = [s for s in specs if s.shape is not None and any(d is None for d in s.shape[1:])]
        if open_dims and not options.allow_flex:
            flags = " ".join(f"--input-shape {s.name}={_example_shape(s.shape)}" for s in open_dims)
            names = ", ".join(s.name for s in open_dims)
            hint = (f"the inputs leave dims open ({names}), which keeps ops dynamic that fixed shapes lower to "
                    f"builtin ones: fix them, e.g. {flags}, or {hint}")  # fmt: skip
        return f"the TFLite converter needs Select TF (Flex) ops {', '.join(ops) or ''}; {hint}".strip("; ")
    return f"the TFLite converter failed ({text[:300]})"


def _example_shape(shape: tuple) -> str:
    """An --input-shape value for an open shape: batch 1, 128 for other open dims."""
    return ",".join(str(d) if d is not None else ("1" if i == 0 else "128") for i, d in enumerate(shape))


def _flex_ops(text: str) -> Iterator[str]:
    import re

    for m in re.finditer(r"'tf\.(\w+)'", text):
        yield m.group(1)
