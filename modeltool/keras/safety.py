"""What in a Keras config would make Keras import or run code from outside Keras.

Keras 3 configs name the module of every object (`{"module": "keras.layers", "class_name": ...}`)
and functions by module and name (`{"module": "keras.activations", "class_name": "function",
"config": "relu"}`); a hostile file can point those at any module (`os`, `subprocess`) or register
names (`registered_name: "pkg>Thing"`) so that deserializing imports and calls it. modeltool lists
every such reference; `keras.rebuild.check_safe` refuses them unless the user passed `--unsafe` or
supplied the objects in their own `--custom-objects` module. Lambda layers are found separately
(they carry bytecode).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: modules a config may name without asking: Keras itself (Keras 3, tf.keras, Keras 2 spellings)
KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras", "builtins")


def _keras_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in KERAS_MODULES)


def foreign_references(config: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(config path, what it names) for every object or function outside Keras's own modules."""
    if isinstance(config, dict):
        module = config.get("module")
        registered = config.get("registered_name")
        name = config.get("class_name")
        if isinstance(module, str) and module and not _keras_module(module):
            target = config.get("config") if name == "function" and isinstance(config.get("config"), str) else name
            yield where or "(model)", f"{module}.{target}"
        elif isinstance(registered, str) and ">" in registered:
            yield where or "(model)", registered
        for key, value in config.items():
            if key in ("module", "registered_name", "class_name"):
                continue
            yield from foreign_references(value, f"{where}.{key}" if where else str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            yield from foreign_references(value, f"{where}[{i}]")
