"""Exporters: one module per target; the table says which target a destination asks for."""

from __future__ import annotations

from modeltool.errors import UsageError

#: target -> "module:function"; every function is `export(native, ir, dst_tmp, options) -> dict`
EXPORTERS: dict[str, str] = {
    "onnx": "modeltool.exporters.onnx:export",
    "tflite": "modeltool.exporters.tflite:export",
    "savedmodel": "modeltool.exporters.savedmodel:export",
    "keras": "modeltool.exporters.keras:export_keras",
    "h5": "modeltool.exporters.keras:export_h5",
    "weights.h5": "modeltool.exporters.keras:export_weights",
    "json": "modeltool.exporters.keras:export_json",
    "yaml": "modeltool.exporters.keras:export_yaml",
    "checkpoint": "modeltool.exporters.keras:export_checkpoint",
    "pb": "modeltool.exporters.graphdef:export",
}
#: the same targets from a TF graph source (a `FrozenGraph`); Keras targets need Keras layers
GRAPH_EXPORTERS: dict[str, str] = {
    "onnx": "modeltool.exporters.graph:to_onnx",
    "tflite": "modeltool.exporters.graph:to_tflite",
    "savedmodel": "modeltool.exporters.graph:to_savedmodel",
    "pb": "modeltool.exporters.graph:to_pb",
}
#: targets that are run and compared against the source; the others get a round-trip check
RUNNABLE = {"onnx", "tflite", "savedmodel", "pb"}
SUFFIXES = [
    (".weights.h5", "weights.h5"), (".onnx", "onnx"), (".tflite", "tflite"), (".keras", "keras"),
    (".h5", "h5"), (".hdf5", "h5"), (".json", "json"), (".yaml", "yaml"), (".yml", "yaml"), (".ckpt", "checkpoint"),
    (".pb", "pb"),
]  # fmt: skip


def target_for(dst: str, to: str | None = None) -> str:
    """The target a destination asks for: `--to`, else its suffix, else a trailing `/` (SavedModel)."""
    if to:
        to = to.lower().lstrip(".")
        if to in ("saved_model", "saved-model", "dir"):
            to = "savedmodel"
        if to in ("graphdef", "frozen"):
            to = "pb"
        if to not in EXPORTERS:
            raise UsageError(f"--to {to}: unknown target; choose from {', '.join(EXPORTERS)}")
        return to
    if dst.endswith(("/", "\\")):
        return "savedmodel"
    lower = dst.lower()
    for suffix, target in SUFFIXES:
        if lower.endswith(suffix):
            return target
    raise UsageError(
        f"{dst}: cannot tell the target from the name; use a suffix (.onnx .tflite .pb .keras .h5 .weights.h5 "
        ".json .yaml .ckpt), a trailing / for a SavedModel, or --to"
    )
