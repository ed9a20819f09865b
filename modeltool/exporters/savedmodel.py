"""SavedModel for TF Serving: a `serving_default` signature keyed by the source model's names.

Written with Keras's own `ExportArchive` (variables tracked, no Keras object pickled into the
graph), so `tf.saved_model.load`, `saved_model_cli show --all` and TF Serving see plain
signatures: input keys are the model's input names, output keys its output layer names.
"""

from __future__ import annotations

from typing import Any

from modeltool.deps import require
from modeltool.exporters.serving import ExportOptions, boundary_names, input_specs
from modeltool.ir import Model

SIGNATURE = "serving_default"


def write(native: Any, ir: Model | None, path: str, options: ExportOptions) -> list[str]:
    """Write the SavedModel directory at `path`; returns its signature keys."""
    keras = require("keras", "exporting a SavedModel")
    tf = require("tensorflow", "exporting a SavedModel")
    specs = input_specs(native, ir, options.input_shapes)
    _, out_names = boundary_names(native, ir)
    signature = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]

    def serve(*args: Any) -> dict[str, Any]:
        out = native(list(args) if len(args) > 1 else args[0], training=False)
        outs = list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, (list, tuple)) else [out])
        return dict(zip(out_names, outs))

    archive = keras.export.ExportArchive()
    archive.track(native)
    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=signature)
    archive.write_out(path, verbose=False)
    return [SIGNATURE]


def export(native: Any, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    """The SavedModel target; details name the signature and its keys."""
    write(native, ir, path, options)
    specs = input_specs(native, ir, options.input_shapes)
    _, out_names = boundary_names(native, ir)
    return {"signature": SIGNATURE, "inputs": [s.name for s in specs], "outputs": out_names}
