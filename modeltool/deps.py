"""Lazy access to heavy optional dependencies.

TensorFlow takes seconds to import; inspection must never pay for it. Code that needs a heavy
module calls `require("tensorflow")` inside the code path that needs it, and gets either the module
or a `MissingDependencyError` naming the pip extra that provides it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

from modeltool.errors import MissingDependencyError

#: import name -> pip extra of modeltool that installs it
EXTRAS: dict[str, str] = {
    "tensorflow": "tf",
    "tf2onnx": "tf",
    "keras": "tf",
    "onnxruntime": "ort",
    "onnx": "core",
    "tflite": "core",
    "yaml": "core",
}


def available(name: str) -> bool:
    """True when `name` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str, purpose: str = "") -> ModuleType:
    """Import `name` or raise a MissingDependencyError that says how to install it."""
    if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx"):
        # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a CLI's stderr.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra = EXTRAS.get(name.split(".")[0], "all")
        hint = "pip install modeltool" if extra == "core" else f"pip install 'modeltool[{extra}]'"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"{name} is needed{why} but is not installed ({exc}); run: {hint}") from exc
