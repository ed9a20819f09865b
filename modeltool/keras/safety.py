"""What in a Keras config would make Keras import or run code from outside Keras.

Keras 3 configs name the module of every object (`{"module": "keras.layers", "class_name": ...}`)
and functions by module and name (`{"module": "keras.activations", "class_name": "function",
"config": "relu"}`); a hostile file can point those at any module (`os`, `subprocess`) or register
names (`registered_name: "pkg>Thing"`) so that deserializing imports and calls it. modeltool lists
every such reference; `keras.rebuild.check_safe` refuses them unless the user passed `--unsafe` or
supplied the objects in their own `--custom-objects` module. Lambda layers are found separately
(they carry bytecode).

A `.keras` archive can be hostile in its member list too: a member named `../../x` (zip slip) or a
weights member holding pickled objects (the `model.weights.npz` exploit against Keras 3.0, which
loaded it with `allow_pickle=True`). The loader records those findings without reading such members
(`metadata.extra["unsafe_members"]`); `check_archive_members` refuses to rebuild a model from them,
`--unsafe` or not, since no Keras writes such names and modeltool never unpickles.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modeltool.errors import UnsafeContentError

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


def unsafe_member_name(name: str) -> str | None:
    """Why an archive member name is not one any Keras writes (a path leaving the archive), or None.

    Keras writes `config.json`, `metadata.json`, `model.weights.h5` (or `.npz`) and `assets/...`
    through zipfile, always relative and with `/` separators; extracting a name that is absolute,
    climbs with `..`, names a drive or uses `\\` would write outside the extraction directory."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if len(name) > 1 and name[1] == ":" and name[0].isalpha():
        return "names a drive"
    if ".." in name.split("/"):
        return "climbs out of the archive with '..'"
    return None


def check_archive_members(path: str, extra: dict[str, Any]) -> None:
    """Refuse (exit 2) a model whose archive has members the loader flagged as unsafe."""
    found = extra.get("unsafe_members") or []
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UnsafeContentError(
            f"{path}: archive member {first['member']!r} {first['reason']}{more}; refusing to rebuild a model from "
            "this archive (--unsafe does not change this)"
        )
