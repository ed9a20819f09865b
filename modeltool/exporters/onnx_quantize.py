"""`--quantize dynamic|int8|float16` for ONNX, by the maintained implementations (never our own quantizer).

- dynamic: onnxruntime's `quantize_dynamic`: int8 weights, activations quantized at run time
  (ConvInteger/MatMulInteger after DynamicQuantizeLinear). No calibration.
- int8: onnxruntime's `quantize_static` in QDQ format (QuantizeLinear/DequantizeLinear around each
  op, the layout every ONNX runtime with int8 kernels reads), int8 weights per output channel,
  activation ranges calibrated on `--calibration data.npz` (`--calibration-method minmax|entropy|
  percentile`) or, with a loud warning, on seeded random inputs. Softmax stays float: onnxruntime
  fixes its output range at [0, 1] in 1/255 steps, which rounds every probability of a wide
  classifier (1000 classes of ~0.001) to zero; the float Softmax costs no weight bytes.
- float16: onnxruntime's float16 converter (`onnxruntime.transformers.float16`, the maintained copy
  of onnxconverter-common's): weights and compute in float16; inputs and outputs stay float32 unless
  `--no-keep-io-types`. Ops that onnxruntime's provider cannot run in float16 on this device are kept
  float32 and named in the report, found by loading the file, not by a list that goes stale.

Calibration data is given as for verification: arrays keyed by the source's input names, in the
source's layout (channels-last even when `--inputs-as-nchw` makes the file channels-first; modeltool
transposes them).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from typing import Any

import numpy as np

from modeltool.deps import quiet_stderr, require
from modeltool.errors import UnsupportedError, UsageError
from modeltool.exporters.onnx_optimize import save_for_onnxruntime
from modeltool.ir import Model, TensorSpec
from modeltool.options import ConvertOptions
from modeltool.runners.layout import to_channels_first
from modeltool.sources import ExportContext

KINDS = ("dynamic", "int8", "float16")
#: --calibration-method -> onnxruntime's CalibrationMethod
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
#: ops onnxruntime's static quantization must leave float (see the module docstring)
KEEP_FLOAT = ("Softmax",)
#: int8 QDQ with per-channel weights needs QuantizeLinear's `axis` (opset 13); dynamic needs opset 11
MIN_OPSET = {"int8": 13, "dynamic": 11, "float16": 7}
QUANTIZED_DTYPES = {2, 3, 10}  # TensorProto UINT8, INT8, FLOAT16
MAX_FLOAT16_RETRIES = 8


def check_quantize(options: ConvertOptions, opset: int) -> None:
    """Refuse before converting: an unknown kind or method, calibration without int8, too old an opset."""
    kind = options.quantize
    if kind is None:
        if options.calibration or options.calibration_method:
            raise UsageError("--calibration/--calibration-method apply to --quantize int8 only")
        if not options.keep_io_types:
            raise UsageError("--no-keep-io-types applies to --quantize float16 only")
        return
    if kind not in KINDS:
        raise UsageError(f"--quantize {kind}: choose from {', '.join(KINDS)}")
    if kind != "int8" and (options.calibration or options.calibration_method):
        raise UsageError(f"--calibration/--calibration-method apply to --quantize int8, not {kind}")
    if kind != "float16" and not options.keep_io_types:
        raise UsageError(f"--no-keep-io-types applies to --quantize float16, not {kind}")
    if options.calibration_method and options.calibration_method not in CALIBRATION_METHODS:
        methods = ", ".join(CALIBRATION_METHODS)
        raise UsageError(f"--calibration-method {options.calibration_method}: choose from {methods}")
    if opset < MIN_OPSET[kind]:
        raise UsageError(f"--quantize {kind} needs --opset {MIN_OPSET[kind]} or newer (asked: {opset})")


def quantize(onnx: Any, proto: Any, options: ConvertOptions, context: ExportContext, specs: list[TensorSpec],
             ir: Model | None, external: bool) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """`proto` quantized as `options.quantize` asks; returns the new model and the report's details
    (float size, quantized size, quantized node count, calibration, what stayed float)."""
    kind = options.quantize
    float_bytes = _weight_bytes(proto)
    details: dict[str, Any] = {"quantize": kind}
    if kind == "float16":
        proto, kept = _float16(proto, options)
        if kept:
            details["float32_ops"] = kept
    else:
        proto, calibration = _onnxruntime_quantize(onnx, proto, options, context, specs, ir, external)
        if calibration:
            details["calibration"] = calibration
    quantized = quantized_nodes(proto)
    if not quantized:
        context.warnings.append(
            f"--quantize {kind}: onnxruntime found nothing to quantize in this model (no weights of the ops it "
            "quantizes); the file computes in float32"
        )
    details.update({"float_weight_bytes": float_bytes, "quantized_weight_bytes": _weight_bytes(proto),
                    "quantized_nodes": quantized})  # fmt: skip
    return proto, details


def quantized_nodes(proto: Any) -> int:
    """Nodes that compute with quantized weights: an int8/uint8/float16 initializer as an input,
    directly (ConvInteger, MatMulInteger, float16 Conv) or through a DequantizeLinear (QDQ)."""
    graph = proto.graph
    low = {t.name for t in graph.initializer if t.data_type in QUANTIZED_DTYPES}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in low}
    return sum(
        1 for n in graph.node
        if n.op_type not in ("DequantizeLinear", "QuantizeLinear", "Cast") and any(i in low or i in dequantized
                                                                                for i in n.input)
    )  # fmt: skip


def _weight_bytes(proto: Any) -> int:
    return sum(t.ByteSize() for t in proto.graph.initializer)


# ---------------------------------------------------------------- dynamic and int8: onnxruntime.quantization


def _onnxruntime_quantize(
    onnx: Any, proto: Any, options: ConvertOptions, context: ExportContext, specs: list[TensorSpec],
    ir: Model | None, external: bool,
) -> tuple[Any, str | None]:  # fmt: skip
    quantization = require("onnxruntime.quantization", "quantizing ONNX models")
    calibration = None
    with tempfile.TemporaryDirectory(prefix="modeltool-quantize-") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quantized.onnx")
        save_for_onnxruntime(onnx, proto, src, external)
        common = {"use_external_data_format": external, "weight_type": quantization.QuantType.QInt8}
        try:
            with _quiet():
                if options.quantize == "dynamic":
                    quantization.quantize_dynamic(src, dst, **common)
                else:
                    samples, calibration = calibration_samples(specs, ir, options, context)
                    keep = [n.name for n in proto.graph.node if n.op_type in KEEP_FLOAT]
                    method = CALIBRATION_METHODS[options.calibration_method or "minmax"]
                    quantization.quantize_static(
                        src, dst, _reader(quantization, samples), quant_format=quantization.QuantFormat.QDQ,
                        per_channel=True, activation_type=quantization.QuantType.QInt8,
                        calibrate_method=getattr(quantization.CalibrationMethod, method), nodes_to_exclude=keep,
                        **common,
                    )  # fmt: skip
        except (UsageError, UnsupportedError):
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime's quantizer raises anything on an op it cannot handle
            raise UnsupportedError(
                f"--quantize {options.quantize}: onnxruntime's quantizer failed ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]})"
            ) from exc
        quantized = onnx.load(dst, load_external_data=True)
    return quantized, calibration


def _reader(quantization: Any, samples: list[dict[str, np.ndarray]]) -> Any:
    """onnxruntime's CalibrationDataReader over a list of feeds (its class is known only once imported)."""

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._samples = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._samples, None)

    return Reader()


def calibration_samples(specs: list[TensorSpec], ir: Model | None, options: ConvertOptions,
                        context: ExportContext) -> tuple[list[dict[str, np.ndarray]], str]:  # fmt: skip
    """One feed per calibration sample, keyed by input name, in the written file's layout: the
    user's --calibration .npz, else seeded random inputs with a loud warning."""
    from modeltool.feeds import RANDOM_CALIBRATION_WARNING, calibration_feeds

    nchw = set(options.inputs_as_nchw)

    def laid_out(name: str, array: np.ndarray) -> np.ndarray:
        if name in nchw:
            array = np.transpose(array, to_channels_first(array.ndim))
        return np.ascontiguousarray(array)

    feeds, source, random = calibration_feeds(options.calibration, specs, ir, options.seed, options.input_shapes)
    if random:
        context.warnings.append(RANDOM_CALIBRATION_WARNING)
    return [{name: laid_out(name, array) for name, array in feed.items()} for feed in feeds], source


@contextlib.contextmanager
def _quiet() -> Any:
    """onnxruntime's calibrators print progress to stdout (which holds --json) and log to stderr."""
    with contextlib.redirect_stdout(io.StringIO()), quiet_stderr():
        yield


# ---------------------------------------------------------------- float16


def _float16(proto: Any, options: ConvertOptions) -> tuple[Any, list[str]]:
    """Convert; then load it in onnxruntime and keep float32 the op types its provider has no float16
    kernel for, until it loads (each round names one op type)."""
    float16 = require("onnxruntime.transformers.float16", "converting ONNX models to float16")
    onnx_model = require("onnxruntime.transformers.onnx_model", "converting ONNX models to float16")
    blocked = list(float16.DEFAULT_OP_BLOCK_LIST)
    kept: list[str] = []
    for _ in range(MAX_FLOAT16_RETRIES):
        try:
            with _quiet():
                converted = float16.convert_float_to_float16(
                    _copy(proto), keep_io_types=options.keep_io_types, op_block_list=blocked
                )
                # the converter appends the input casts after their consumers; ONNX wants nodes in order
                onnx_model.OnnxModel(converted).topological_sort()
        except Exception as exc:  # noqa: BLE001 - the converter's own errors (shape inference, ...)
            raise UnsupportedError(
                f"--quantize float16: the float16 converter failed ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]})"
            ) from exc
        missing = _missing_float16_kernel(converted, options.device)
        if missing is None:
            return converted, kept
        if missing in blocked:
            break
        blocked.append(missing)
        kept.append(missing)
    raise UnsupportedError(f"--quantize float16: onnxruntime cannot run the float16 model ({', '.join(kept)} kept "
                           "float32 and it still fails)")  # fmt: skip


def _copy(proto: Any) -> Any:
    copy = type(proto)()
    copy.CopyFrom(proto)
    return copy


def _missing_float16_kernel(proto: Any, device: str) -> str | None:
    """The op type onnxruntime reports it has no kernel for, or None when the model loads."""
    ort = require("onnxruntime", "checking the float16 model")
    from modeltool.runners.onnxruntime import providers_for

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        with quiet_stderr():
            ort.InferenceSession(proto.SerializeToString(), options, providers=providers_for(device))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        found = re.search(r"Could not find an implementation for (\w+)\(", str(exc))
        if found:
            return found.group(1)
        raise UnsupportedError(
            f"--quantize float16: onnxruntime cannot load the float16 model ({' '.join(str(exc).split())[:300]})"
        ) from exc
    return None
