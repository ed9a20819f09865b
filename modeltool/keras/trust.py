"""Installed Keras-family model libraries (KerasHub, ...) trusted like Keras itself.

A `.keras` file saved from a KerasHub model names its classes twice: by module
(`keras_hub.src.models.bert.bert_backbone`) and by registered name (`keras_hub>BertBackbone`). Both
are strings from the file. modeltool never imports the module string. It imports the *package* the
user installed (`keras_hub`), by a name from its own allowlist (or the user's `--trust PKG`), which
registers the package's classes with Keras, then resolves every registered name the file uses in
that registry and hands Keras the resolved classes as custom objects: Keras finds them there first
and never reaches its own module import. A name the package does not register is refused, as is a
reference whose module and registered name disagree on the package.

Keras 3's own `safe_mode` goes further than this: its deserializer imports any module string under
`keras`, `keras_hub`, `keras_cv` or `keras_nlp` that a file names (CVE-2025-1550 was the same idea
without the package check: any module). modeltool imports only the top-level package.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from modeltool.errors import MissingDependencyError, UnsafeContentError

#: packages trusted without asking when installed: Keras's own model libraries
DEFAULT_TRUSTED = ("keras_hub", "keras_nlp", "keras_cv", "keras_rs")
#: what `pip install` calls them
PIP_NAMES = {"keras_hub": "keras-hub", "keras_nlp": "keras-nlp", "keras_cv": "keras-cv", "keras_rs": "keras-rs"}


@dataclass(frozen=True)
class LibraryReference:
    """One object of a model library named by a config: where, which package, which class or function."""

    where: str
    package: str
    name: str  # class name, or the function's name
    registered_name: str | None
    module: str | None
    function: bool


def package_of(name: str) -> str:
    """The top-level package of a module path or registered name (`keras_hub>X`, `keras_hub.src.y`)."""
    return re.split(r"[.>]", name, maxsplit=1)[0]


def trusted_packages(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The default libraries plus those the user named with --trust."""
    return tuple(dict.fromkeys([*DEFAULT_TRUSTED, *extra]))


def installed(package: str) -> bool:
    """Whether `package` is an importable module or regular package, found without importing it (so
    without running it). A bare folder of that name (a namespace package: `fixtures/` in the working
    directory) is no library."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def pip_name(package: str) -> str:
    return PIP_NAMES.get(package, package.replace("_", "-"))


def library_references(config: Any, trust: Iterable[str] = (), where: str = "") -> Iterator[LibraryReference]:
    """Every object of a trusted package that `config` names (nested configs included)."""
    packages = set(trusted_packages(trust))
    if isinstance(config, dict):
        module, registered = config.get("module"), config.get("registered_name")
        name = config.get("class_name")
        function = name == "function" and isinstance(config.get("config"), str)
        owner = _owner(module, registered)
        if owner in packages and isinstance(name, str):
            leaf = config["config"] if function else name
            yield LibraryReference(where or "(model)", owner, leaf, registered if isinstance(registered, str) else None,
                                   module if isinstance(module, str) else None, function)  # fmt: skip
        for key, value in config.items():
            if key not in ("module", "registered_name", "class_name"):
                yield from library_references(value, trust, f"{where}.{key}" if where else str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            yield from library_references(value, trust, f"{where}[{i}]")


def _owner(module: Any, registered: Any) -> str | None:
    """The package a reference belongs to when its module and registered name agree, else None."""
    owners = {package_of(v) for v in (module, registered) if isinstance(v, str) and v and (v == module or ">" in v)}
    return owners.pop() if len(owners) == 1 else None


def library_of(config: Any) -> str | None:
    """The default-trusted library whose class this config entry is (module and registered name
    agreeing), else None."""
    if not isinstance(config, dict):
        return None
    owner = _owner(config.get("module"), config.get("registered_name"))
    return owner if owner in DEFAULT_TRUSTED else None


def trust_hint(config: Any, class_name: str) -> str:
    """", or --trust PKG" when an installed package registers `class_name` under the name the
    config gives it (a model library modeltool does not trust by default), else ""."""
    from modeltool.keras.safety import foreign_references

    for _, target in foreign_references(config):
        if re.split(r"[.>]", target)[-1] == class_name:
            package = package_of(target)
            if installed(package):
                return f", or --trust {package} if you trust that installed package"
    return ""


def required_libraries(config: Any, trust: Iterable[str] = ()) -> dict[str, list[LibraryReference]]:
    """{package: the references to it} for the trusted packages a config uses."""
    out: dict[str, list[LibraryReference]] = {}
    for ref in library_references(config, trust):
        out.setdefault(ref.package, []).append(ref)
    return out


def missing_library_message(path: str, package: str, refs: list[LibraryReference], doing: str) -> str:
    classes = ", ".join(dict.fromkeys(r.name for r in refs))
    return (f"{path}: the model is built from {package} classes ({classes}); {doing} needs that library: "
            f"pip install {pip_name(package)}")  # fmt: skip


def trusted_objects(path: str, config: Any, trust: Iterable[str] = (), doing: str = "running it") -> dict[str, Any]:
    """The classes and functions of trusted libraries that `config` names, resolved in Keras's
    registry after importing their packages: {registered name, class name or function name: object}.
    Empty (and nothing imported) when the config names none."""
    needed = required_libraries(config, trust)
    if not needed:
        return {}
    for package, refs in needed.items():
        if not installed(package):
            raise MissingDependencyError(missing_library_message(path, package, refs, doing))
    from modeltool.deps import require

    keras = require("keras", "building a model of a Keras model library")
    objects: dict[str, Any] = {}
    for package, refs in needed.items():
        importlib.import_module(package)  # the installed package, by our name: registers its classes
        for ref in refs:
            key = ref.registered_name or f"{package}>{ref.name}"
            obj = keras.saving.get_registered_object(key)
            if obj is None:
                raise UnsafeContentError(
                    f"{path}: the config at {ref.where} names {key!r}, which the installed {package} does not "
                    f"register; refusing to import the module the file names ({ref.module})"
                )
            objects[key] = obj
            objects.setdefault(ref.name, obj)
    return objects
