"""What `convert` can write: one row per target, in one table.

A row says how a destination names the target (suffixes), which exporter writes it ("module:function",
imported only when used), whether the result is run and compared with the source or read back, the
precision its default tolerance is for, whether it needs Keras layers (Keras formats cannot be
written from a TensorFlow graph), and which target-only options it takes: an option given for a
target that does not take it is a usage error naming both, never silently ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modeltool.errors import UsageError


class Target(str, enum.Enum):
    ONNX = "onnx"
    TFLITE = "tflite"
    SAVEDMODEL = "savedmodel"
    PB = "pb"
    KERAS = "keras"
    H5 = "h5"
    WEIGHTS_H5 = "weights.h5"
    JSON = "json"
    YAML = "yaml"
    CHECKPOINT = "checkpoint"

    def __str__(self) -> str:  # the value in text and f-strings, as in JSON
        return self.value


#: target-only options: ConvertOptions field -> its flag (for messages)
TARGET_OPTIONS = {
    "opset": "--opset",
    "quantize": "--quantize",
    "calibration": "--calibration",
    "calibration_method": "--calibration-method",
    "allow_flex": "--allow-flex",
    "inputs_as_nchw": "--inputs-as-nchw",
    "outputs_as_nchw": "--outputs-as-nchw",
    "optimize": "--optimize",
    "external_data": "--external-data",
}


@dataclass(frozen=True)
class TargetSpec:
    target: Target
    suffixes: tuple[str, ...]
    exporter: str  # "module:function"; function(source, path, options, context) -> details dict
    runnable: bool  # verified by running it; otherwise read back and its weights compared
    needs_keras: bool = False
    options: frozenset[str] = frozenset()  # the target-only options it takes
    description: str = ""


TARGETS: dict[Target, TargetSpec] = {
    spec.target: spec
    for spec in (
        TargetSpec(Target.ONNX, (".onnx",), "modeltool.exporters.onnx_route:export", True,
                   options=frozenset({"opset", "quantize", "calibration", "calibration_method", "inputs_as_nchw",
                                      "outputs_as_nchw", "optimize", "external_data"}), description="ONNX"),
        TargetSpec(Target.TFLITE, (".tflite",), "modeltool.exporters.tflite_route:export", True,
                   options=frozenset({"quantize", "calibration", "allow_flex"}), description="TensorFlow Lite"),
        TargetSpec(Target.SAVEDMODEL, (), "modeltool.exporters.savedmodel:export", True,
                   description="TensorFlow SavedModel directory"),
        TargetSpec(Target.PB, (".pb",), "modeltool.exporters.graphdef:export", True,
                   description="frozen GraphDef"),
        TargetSpec(Target.KERAS, (".keras",), "modeltool.exporters.keras:export_keras", False, True,
                   description="Keras 3 archive"),
        TargetSpec(Target.H5, (".h5", ".hdf5"), "modeltool.exporters.keras:export_h5", False, True,
                   description="legacy Keras HDF5"),
        TargetSpec(Target.WEIGHTS_H5, (".weights.h5",), "modeltool.exporters.keras:export_weights", False, True,
                   description="Keras 3 weights"),
        TargetSpec(Target.JSON, (".json",), "modeltool.exporters.keras:export_json", False, True,
                   description="Keras architecture (JSON)"),
        TargetSpec(Target.YAML, (".yaml", ".yml"), "modeltool.exporters.keras:export_yaml", False, True,
                   description="Keras architecture (YAML)"),
        TargetSpec(Target.CHECKPOINT, (".ckpt",), "modeltool.exporters.keras:export_checkpoint", False, True,
                   description="TF checkpoint of the weights"),
    )
}  # fmt: skip

ALIASES = {"saved_model": Target.SAVEDMODEL, "saved-model": Target.SAVEDMODEL, "dir": Target.SAVEDMODEL,
           "graphdef": Target.PB, "frozen": Target.PB}  # fmt: skip


def target_for(dst: str, to: str | None = None) -> Target:
    """The target a destination asks for: `--to`, else its suffix (longest first), else a trailing
    `/` (SavedModel)."""
    if to:
        key = to.lower().lstrip(".")
        if key in ALIASES:
            return ALIASES[key]
        try:
            return Target(key)
        except ValueError:
            raise UsageError(f"--to {to}: unknown target; choose from {', '.join(t.value for t in Target)}") from None
    if dst.endswith(("/", "\\")):
        return Target.SAVEDMODEL
    lower = dst.lower()
    by_length = sorted(((s, spec.target) for spec in TARGETS.values() for s in spec.suffixes), key=lambda x: -len(x[0]))
    for suffix, target in by_length:
        if lower.endswith(suffix):
            return target
    suffixes = " ".join(s for s, _ in sorted(by_length, key=lambda x: x[0]))
    raise UsageError(
        f"{dst}: cannot tell the target from the name; use a suffix ({suffixes}), a trailing / for a SavedModel, "
        "or --to"
    )


def check_target_options(target: Target, options: object) -> None:
    """Refuse a target-only option (set to a non-default value) that `target` does not take, and
    `--no-keep-io-types` off the ONNX target, `--via` off targets with one route."""
    spec = TARGETS[target]
    if target not in (Target.ONNX, Target.TFLITE) and getattr(options, "via", "auto") != "auto":
        raise UsageError(f"--via applies to onnx and tflite targets only, not to {target.value}")
    if target != Target.ONNX:
        if getattr(options, "keep_io_types", True) is False:
            raise UsageError(f"--no-keep-io-types applies to onnx targets only, not to {target.value}")
    for name, flag in TARGET_OPTIONS.items():
        if getattr(options, name, None) and name not in spec.options:
            takers = [t.value for t, s in TARGETS.items() if name in s.options]
            raise UsageError(f"{flag} applies to {'/'.join(takers)} targets only, not to {target.value}")
