"""The writer's runtime loading the file itself: the reference of a Keras file that holds no code.

A reference built from modeltool's own reading of a file (its config normalization, its weight
roles, its legacy array layouts) shares every bug of that reading with the converted model, so a
wrong weight would pass. Once `check_safe` has shown that a file holds no code (no Lambda, no class
from outside Keras and the trusted model libraries), the runtime that wrote it reads it with its own
loader: Keras 3 `keras.saving.load_model(path, compile=False, safe_mode=True)` for Keras 3 files,
tf_keras `load_model(path, compile=False)` for Keras 2 files. A file that holds code is never handed
to a loader (tf_keras unmarshals Lambda bytecode from H5); it, Keras 1 files (no runtime reads them
any more) and files the runtime refuses keep modeltool's rebuild, and the report says why.
"""

from __future__ import annotations

from typing import Any

from modeltool.deps import available, require
from modeltool.formats import Format
from modeltool.ir import Model
from modeltool.keras.semantics import writer_generation
from modeltool.keras.tfkeras import CUDNN_CLASSES

#: formats that are one file a Keras runtime loads whole (architecture and weights)
LOADABLE = (Format.KERAS_V3, Format.KERAS_H5)


def refusal(model: Model) -> str | None:
    """Why the writer's runtime must not (or cannot) load this file itself, or None."""
    if model.format not in LOADABLE or model.metadata.extra.get("weights_from"):
        return "the architecture and the weights come from separate files"
    for path, node in model.graph.walk() if model.graph is not None else []:
        if "lambda" in node.flags:
            return f"layer {path!r} is a Lambda: a file holding code is never handed to a runtime's loader"
        if "custom" in node.flags and "library" not in node.flags and "subclassed" not in node.flags:
            return f"layer {path!r} is of custom class {node.op!r}: a file naming code is never handed to a loader"
        if node.op in CUDNN_CLASSES:
            return f"layer {path!r} is a {node.op}, which Keras 2 runs only on a GPU"
    generation = writer_generation(model)
    if generation == 1:
        return "written by Keras 1, which no runtime reads any more"
    if generation == 2 and not available("tf_keras"):
        return "tf_keras (the Keras 2 runtime) is not installed"
    return None


def load(model: Model, custom_objects: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(the model as the writer's runtime loads it, a label naming that runtime). Call `refusal`
    first; raises whatever the runtime raises when it refuses the file."""
    if writer_generation(model) >= 3:
        keras = require("keras", "loading the file in Keras 3 for the reference")
        native = keras.saving.load_model(model.path, custom_objects=custom_objects or {}, compile=False,
                                         safe_mode=True)  # fmt: skip
        return native, f"Keras {keras.__version__}"
    tf_keras = require("tf_keras", "loading the file in Keras 2 for the reference")
    return tf_keras.models.load_model(model.path, compile=False), f"tf_keras {tf_keras.__version__}"
