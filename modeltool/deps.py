"""Lazy access to heavy optional dependencies.

TensorFlow takes seconds to import; inspection must never pay for it. Code that needs a heavy
module calls `require("tensorflow")` inside the code path that needs it, and gets either the module
or a `MissingDependencyError` naming the pip extra that provides it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from modeltool.errors import MissingDependencyError

#: modeltool's distribution name (the command and the package are `modeltool`; the PyPI project named
#: `modeltool` is an unrelated one)
DISTRIBUTION = "modeltool-tf"
#: import name -> pip extra of modeltool that installs it
EXTRAS: dict[str, str] = {
    "tensorflow": "tf",
    "tf2onnx": "tf",
    "keras": "jax",
    "jax": "jax",
    "tf_keras": "tf",
    "onnxruntime": "ort",
    "ai_edge_litert": "litert",
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


def keras_backend() -> str:
    """The Keras backend modeltool runs Keras on: the user's `KERAS_BACKEND` when set, else TensorFlow
    when it is installed (TF-based targets need it), else JAX (the light install: no TensorFlow)."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    if available("tensorflow") or not available("jax"):
        return "tensorflow"
    return "jax"


def require(name: str, purpose: str = "") -> ModuleType:
    """Import `name` or raise a MissingDependencyError that says how to install it."""
    top = name.split(".")[0]
    quiet = top in ("tensorflow", "keras", "tf2onnx", "tf_keras", "jax") and top not in sys.modules
    if quiet:
        # TensorFlow's C++ chatter (oneDNN, the CUDA probe's "failed call to cuInit" when a graph first
        # runs) is noise on a CLI's stderr: modeltool reports what failed itself, in one line.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("KERAS_BACKEND", keras_backend())
    try:
        with quiet_stderr(quiet):
            module = importlib.import_module(name)
        if quiet and "tensorflow" in sys.modules and not os.environ.get("MODELTOOL_DEBUG"):
            # v1-API deprecation notices (ours and tf2onnx's) are not the user's concern
            sys.modules["tensorflow"].get_logger().setLevel("ERROR")
        if quiet and name == "tf_keras":
            import warnings

            warnings.filterwarnings("ignore", module="tf_keras")  # its deprecation notices are not the user's
        if quiet and name == "tf2onnx" and not os.environ.get("MODELTOOL_DEBUG"):
            import logging

            logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # modeltool reports what failed, once
        return module
    except ImportError as exc:
        extra = EXTRAS.get(name.split(".")[0], "all")
        hint = f"pip install '{DISTRIBUTION}[{extra}]'" if extra != "core" else f"pip install {DISTRIBUTION}"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"{name} is needed{why} but is not installed ({exc}); run: {hint}") from exc


@contextmanager
def quiet_stderr(active: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null while `active` (C++ logging ignores Python's sys.stderr)."""
    if not active or os.environ.get("MODELTOOL_DEBUG"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        # Python-level writes too (a library's `logging.warning`), which may not go through fd 2
        # while a command runs (`cli.own_stderr` gives sys.stderr a descriptor of its own)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - closed below
        yield
    finally:
        sys.stderr.close()
        sys.stderr = python_stderr
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
