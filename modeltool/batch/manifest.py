"""Which models a batch converts, and how: found under folders by content, or listed in a manifest.

A folder is walked and every file or sub-folder that `modeltool.formats.detect` recognises as a whole
model becomes one model; a SavedModel or checkpoint folder is one model (it is not descended into).
Weights-only files and bare JSON/YAML architectures are no model on their own: they are listed as
skipped, with the reason, rather than turned into jobs that can only fail. A path named explicitly is
always a model: if it is broken, its jobs fail and say why.

A manifest (`models.yaml`, YAML or JSON) lists models with their own targets, convert options and
limits; relative paths are relative to the manifest's folder::

    targets: [onnx, tflite]          # default targets
    defaults: {batch: 1}             # default options of every model
    models:
      - path: zoo/resnet50.keras
      - path: zoo/custom.keras
        name: custom                 # its name in the reports (default: the path)
        targets: [onnx]
        custom_objects: layers.py    # any ConvertOptions field, or the flag's spelling
        input_shapes: {image: [1, 224, 224, 3]}
        timeout: 600                 # seconds; overrides --timeout
        max_memory: 8G               # overrides --max-memory
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeltool.errors import FormatError, LoadError, UsageError
from modeltool.formats import Format, detect
from modeltool.options import ConvertOptions, option_fields, parse_fixed, parse_shapes
from modeltool.targets import target_for

#: formats that hold no whole model: found in a folder, they are listed as skipped
NOT_A_MODEL = {
    Format.KERAS_H5_WEIGHTS: "weights only (no architecture)",
    Format.KERAS3_WEIGHTS: "weights only (no architecture)",
    Format.KERAS_JSON: "architecture only (no weights; list it in a manifest with weights_from)",
    Format.KERAS_YAML: "architecture only (no weights; list it in a manifest with weights_from)",
}
#: ConvertOptions fields a batch sets itself (per job), never a model entry
BATCH_OWNED = {"to", "force", "html", "localize"}
#: ConvertOptions fields holding a path: made absolute, since jobs run elsewhere (another folder, another node)
PATH_FIELDS = ("custom_objects", "weights_from", "config", "calibration", "input_data")
#: a model entry's keys besides the options
ENTRY_KEYS = {"path", "name", "targets", "timeout", "max_memory"}
#: the flags' spellings, accepted in a manifest for the fields they set
ALIASES = {
    "input": "input_data",
    "input_shape": "input_shapes",
    "fix_input": "fixed_inputs",
    "reference": "reference_mode",
}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the batch: where it is, what it becomes, with which options and limits."""

    id: str  # its name in the reports and its folder under --out
    path: str  # absolute
    targets: tuple[str, ...]
    #: ConvertOptions fields that differ from the defaults, as JSON values (paths absolute)
    options: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # None: the run's --timeout
    max_memory: int | None = None  # bytes; None: the run's --max-memory


@dataclass(frozen=True)
class Skipped:
    """A file found under a folder that is no model on its own."""

    path: str
    reason: str


def parse_size(value: str | int | float | None, what: str = "--max-memory") -> int | None:
    """`8G`, `512M`, `1.5GB`, `2048` (bytes) -> bytes; units of 1024, as modeltool prints sizes."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(value).lower())
    if not m:
        raise UsageError(f"{what} {value!r}: expected a size such as 4G, 512M or a number of bytes")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def parse_targets(value: str | list | tuple | None, where: str = "--to") -> tuple[str, ...]:
    """`onnx,tflite` or a list -> ("onnx", "tflite"), each checked against the target table."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if item:
            target = target_for("", item).value  # raises UsageError naming the valid targets
            if target not in out:
                out.append(target)
    if not out:
        raise UsageError(f"{where}: no target given (e.g. onnx,tflite)")
    return tuple(out)


def normalize_options(values: dict[str, Any], base: str, where: str) -> dict[str, Any]:
    """Manifest or flag values -> JSON values of ConvertOptions fields that differ from the defaults.

    Keys may use the flags' spellings (`custom-objects`, `input-shape`); paths are made absolute against
    `base`; shapes become lists; an unknown key is refused, naming the keys that are known."""
    fields = set(option_fields(ConvertOptions)) - BATCH_OWNED
    defaults = vars(ConvertOptions())
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = ALIASES.get(raw_key.replace("-", "_"), raw_key.replace("-", "_"))
        if key == "no_verify":
            key, value = "verify", not value
        if key not in fields:
            known = ", ".join(sorted(fields | ENTRY_KEYS))
            raise UsageError(f"{where}: unknown key {raw_key!r}; known: {known}")
        value = _option_value(key, value, base, where)
        if _jsonable(value) != _jsonable(defaults[key]):  # () from a repeatable flag is the default []
            out[key] = value
    return out


def _option_value(key: str, value: Any, base: str, where: str) -> Any:
    if key in PATH_FIELDS and value is not None:
        return os.path.abspath(os.path.join(base, os.path.expanduser(str(value))))
    if key == "input_shapes":
        if isinstance(value, dict):
            shapes = {str(k): v if isinstance(v, (list, tuple)) else parse_shapes([f"{k}={v}"])[str(k)]
                      for k, v in value.items()}  # fmt: skip
        else:
            shapes = parse_shapes([value] if isinstance(value, str) else list(value or ()))
        return {k: [None if d is None else int(d) for d in v] for k, v in shapes.items()}
    if key == "fixed_inputs":
        if isinstance(value, dict):
            return {str(k): float(v) for k, v in value.items()}
        return parse_fixed([value] if isinstance(value, str) else list(value or ()))
    if key in ("inputs_as_nchw", "outputs_as_nchw"):
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return [str(i).strip() for i in items if str(i).strip()]
    if key in ("inputs", "outputs") and isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where}: {key} takes one value, not {type(value).__name__}")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def discover_models(
    paths: list[str], targets: tuple[str, ...], options: dict[str, Any] | None = None, *, exclude: tuple[str, ...] = ()
) -> tuple[list[ModelEntry], list[Skipped]]:
    """Every model under `paths` (files or folders), each with `targets` and `options`; folders under
    `exclude` (the run's own output) are not looked into."""
    found: list[tuple[str, str]] = []  # (id, absolute path)
    skipped: list[Skipped] = []
    excluded = {os.path.realpath(p) for p in exclude}
    for given in paths:
        path = os.path.abspath(given)
        root = os.path.dirname(path.rstrip(os.sep)) or os.sep
        if not os.path.isdir(path) or _whole_model_folder(path):
            found.append((_relative_id(path, root), path))  # named explicitly: a model, even a broken one
            continue
        _check_outside(path, exclude)
        for model, reason in _walk(path, excluded):
            if reason:
                skipped.append(Skipped(model, reason))
            else:
                found.append((_relative_id(model, root), model))
    entries = []
    for i, p in _unique(found):
        own = _own_target(p)
        if own in targets:  # a file already in a target's format is not converted to it again
            skipped.append(Skipped(p, f"already {own}: not converted to {own}"))
        kept = tuple(t for t in targets if t != own)
        if kept:
            entries.append(ModelEntry(i, p, kept, dict(options or {})))
    return entries, skipped


#: source formats that are themselves a target's format
OWN_TARGET = {Format.ONNX: "onnx", Format.TFLITE: "tflite", Format.SAVEDMODEL: "savedmodel", Format.GRAPHDEF: "pb"}


def _own_target(path: str) -> str | None:
    try:
        return OWN_TARGET.get(detect(path))
    except (FormatError, LoadError):
        return None


def _check_outside(folder: str, outputs: tuple[str, ...]) -> None:
    """A folder that is read must not be (or lie inside) the output folder: a rerun would find the
    artifacts of the first run among the models."""
    real = os.path.realpath(folder)
    for out in outputs:
        top = os.path.realpath(out)
        if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
            raise UsageError(f"{folder}: lies inside --out {out}; write the outputs to a folder outside the models")


def _whole_model_folder(path: str) -> bool:
    try:
        return detect(path) in (Format.SAVEDMODEL, Format.CHECKPOINT)
    except (FormatError, LoadError):
        return False


def _walk(folder: str, excluded: set[str]) -> list[tuple[str, str]]:
    """(path, "") for each model under `folder`, (path, why) for each file that is no model on its own;
    files that are no model file at all (scripts, data, notes) are passed over in silence."""
    out: list[tuple[str, str]] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or os.path.realpath(entry.path) in excluded:
            continue
        if entry.is_dir(follow_symlinks=False):
            out += [(entry.path, "")] if _whole_model_folder(entry.path) else _walk(entry.path, excluded)
            continue
        if not entry.is_file():
            continue
        try:
            fmt = detect(entry.path)
        except LoadError:
            out.append((entry.path, ""))  # a model file that is damaged: its jobs say so
            continue
        except FormatError:
            continue
        if fmt == Format.CHECKPOINT:
            continue  # a loose checkpoint part; its folder would have been taken as one model
        out.append((entry.path, NOT_A_MODEL.get(fmt, "")))
    return out


def _relative_id(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return model_id(rel if not rel.startswith("..") else os.path.basename(path.rstrip(os.sep)))


def model_id(text: str) -> str:
    """A name usable in reports and as a folder under --out: `/`-separated, no `..`, no odd characters."""
    parts = [re.sub(r"[^\w.+=-]", "_", p) for p in Path(text).parts if p not in ("", ".", "..", os.sep)]
    return "/".join(p for p in parts if p.strip(".")) or "model"


def _unique(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same file named twice is one model; two different models with one id are told apart (`~2`)."""
    seen_paths: set[str] = set()
    ids: dict[str, int] = {}
    out = []
    for mid, path in found:
        if path in seen_paths:
            continue
        seen_paths.add(path)
        n = ids.get(mid, 0) + 1
        ids[mid] = n
        out.append((mid if n == 1 else f"{mid}~{n}", path))
    return out


def load_manifest(
    path: str, targets: tuple[str, ...] = (), options: dict[str, Any] | None = None, *, exclude: tuple[str, ...] = ()
) -> tuple[list[ModelEntry], list[Skipped]]:
    """The models a manifest lists. `targets` and `options` (the command line's) apply where the
    manifest says nothing; its `defaults` where a model says nothing."""
    import yaml

    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not a valid YAML/JSON manifest ({str(exc).splitlines()[0]})") from exc
    if isinstance(data, list):
        data = {"models": data}
    unknown = set(data) - {"models", "targets", "defaults", "timeout", "max_memory"} if isinstance(data, dict) else ()
    if unknown:
        raise UsageError(f"{path}: unknown top-level key(s) {sorted(unknown)}; known: models, targets, defaults, "
                         "timeout, max_memory")  # fmt: skip
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise UsageError(f"{path}: a manifest is a mapping with a `models:` list (or a list of models)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UsageError(f"{path}: `defaults:` must be a mapping of options")
    run_targets = parse_targets(data["targets"], f"{path}: targets") if data.get("targets") else targets
    base_options = {**(options or {}), **normalize_options(defaults, base, f"{path}: defaults")}
    entries: list[ModelEntry] = []
    skipped: list[Skipped] = []
    found: list[tuple[str, ModelEntry]] = []
    for i, raw in enumerate(data["models"]):
        where = f"{path}: models[{i}]"
        raw = {"path": raw} if isinstance(raw, str) else raw
        if not isinstance(raw, dict) or not raw.get("path"):
            raise UsageError(f"{where}: each model needs a `path`")
        entry_targets = parse_targets(raw["targets"], f"{where}: targets") if raw.get("targets") else run_targets
        if not entry_targets:
            raise UsageError(f"{where}: no targets (give `targets:` in the manifest or --to)")
        opts = {**base_options, **normalize_options({k: v for k, v in raw.items() if k not in ENTRY_KEYS}, base,
                                                    where)}  # fmt: skip
        model_path = os.path.abspath(os.path.join(base, os.path.expanduser(str(raw["path"]))))
        limits = {
            "timeout": _number(raw.get("timeout", data.get("timeout")), f"{where}: timeout"),
            "max_memory": parse_size(raw.get("max_memory", data.get("max_memory")), f"{where}: max_memory"),
        }
        if os.path.isdir(model_path) and not _whole_model_folder(model_path):
            inner, more = discover_models([model_path], entry_targets, opts, exclude=exclude)
            skipped += more
            prefix = model_id(str(raw["name"])) + "/" if raw.get("name") else ""
            found += [(prefix + e.id, ModelEntry(prefix + e.id, e.path, e.targets, e.options, **limits))
                      for e in inner]  # fmt: skip
            continue
        mid = model_id(str(raw.get("name") or _manifest_id(model_path, base)))
        found.append((mid, ModelEntry(mid, model_path, entry_targets, opts, **limits)))
    ids: dict[str, int] = {}
    for mid, entry in found:
        n = ids.get(mid, 0) + 1
        ids[mid] = n
        entries.append(entry if n == 1 else ModelEntry(f"{mid}~{n}", entry.path, entry.targets, entry.options,
                                                       entry.timeout, entry.max_memory))  # fmt: skip
    return entries, skipped


def _manifest_id(path: str, base: str) -> str:
    rel = os.path.relpath(path, base)
    return rel if not rel.startswith("..") else os.path.basename(path.rstrip(os.sep))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: expected a number of seconds, got {value!r}") from None
    if number <= 0:
        raise UsageError(f"{where}: must be positive, got {value!r}")
    return number
