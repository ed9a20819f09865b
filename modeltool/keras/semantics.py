"""What the file's writer computed, kept where Keras 3 would compute something else.

Normalizing a Keras 1/2 config to Keras 3 spellings (`legacy.py`) is not enough: some names kept
their spelling and changed their meaning. `hard_sigmoid` is `clip(0.2x + 0.5, 0, 1)` in Keras 1/2
and tf_keras but `relu6(x + 3) / 6` in Keras 3, so a Keras 2 ConvLSTM2D rebuilt as written computes
other numbers. The rewrites here run on the Keras 3 config of a file written by Keras 1 or 2 and
replace each such name by an object that computes what the writer computed. The inventory of every
change between the generations, with what modeltool does about each, is `docs/keras-semantics.md`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from modeltool.errors import UnsupportedError
from modeltool.ir import Model

#: config keys that name an activation function
ACTIVATION_KEYS = ("activation", "recurrent_activation")
#: activation names whose Keras 1/2 meaning differs from Keras 3's -> modeltool's legacy function
LEGACY_ACTIVATIONS = {"hard_sigmoid": "legacy_hard_sigmoid"}
LEGACY_PACKAGE = "modeltool"
LEGACY_NAMES = frozenset(LEGACY_ACTIVATIONS.values())


def writer_generation(model: Model) -> int:
    """1, 2 or 3: the Keras generation that wrote the file, from its `keras_version` (tf.keras
    versions such as "2.2.4-tf" and "2.12.0" are 2), else from the config's shape (Keras 3 configs
    name a `module` for every layer)."""
    version = str(model.metadata.writer.get("keras_version") or "")
    match = re.match(r"\s*(\d+)", version)
    if match and match.group(1) in ("1", "2", "3"):
        return int(match.group(1))
    if version.startswith("1.x"):
        return 1
    cfg = model.config or {}
    return 3 if isinstance(cfg, dict) and "module" in cfg else 2


def legacy_hard_sigmoid(x: Any) -> Any:
    """Keras 1/2 and tf_keras `hard_sigmoid`: `clip(0.2 * x + 0.5, 0, 1)` (ONNX HardSigmoid's
    default alpha=0.2, beta=0.5)."""
    from keras import ops

    return ops.clip(x * 0.2 + 0.5, 0.0, 1.0)


def legacy_objects() -> dict[str, Callable]:
    """The objects a preserved config refers to, for `custom_objects` of Keras's deserializer.

    A Keras file modeltool writes from such a model names them (`modeltool>legacy_hard_sigmoid`):
    load it with `keras.saving.load_model(path, custom_objects=legacy_objects())`."""
    return {"legacy_hard_sigmoid": legacy_hard_sigmoid, f"{LEGACY_PACKAGE}>legacy_hard_sigmoid": legacy_hard_sigmoid}


def register_legacy_objects() -> None:
    """Register the legacy functions with Keras under `modeltool>NAME`, so that a model using them
    serializes them by that name (not as an anonymous `builtins` function no loader can find) and a
    file modeltool wrote loads back in this process. Idempotent; imports Keras."""
    from keras import saving

    registered = saving.get_registered_object(f"{LEGACY_PACKAGE}>legacy_hard_sigmoid")
    if registered is None:
        saving.register_keras_serializable(package=LEGACY_PACKAGE, name="legacy_hard_sigmoid")(legacy_hard_sigmoid)


def uses_legacy_objects(cfg: Any) -> bool:
    """True when a (Keras 3) config refers to one of modeltool's legacy functions."""
    if isinstance(cfg, dict):
        if cfg.get("class_name") == "function" and str(cfg.get("config", "")).split(">")[-1] in LEGACY_NAMES:
            return True
        return any(uses_legacy_objects(v) for v in cfg.values())
    if isinstance(cfg, list):
        return any(uses_legacy_objects(v) for v in cfg)
    return False


def activation_meaning(value: Any, generation: int) -> Any:
    """An activation config value named by what it computes, for comparing files across Keras
    generations: a Keras 1/2 `hard_sigmoid` and modeltool's registered legacy function are both
    `legacy_hard_sigmoid`; Keras 3's `hard_sigmoid` stays `hard_sigmoid`. Other values unchanged."""
    if isinstance(value, str) and generation < 3 and value in LEGACY_ACTIVATIONS:
        return LEGACY_ACTIVATIONS[value]
    if isinstance(value, dict) and value.get("class_name") == "function":
        name = str(value.get("config", "")).split(">")[-1]
        if name in LEGACY_NAMES:
            return name
    return value


def preserve_writer_semantics(cfg: dict, generation: int) -> list[str]:
    """Rewrite a Keras 3 model config (in place) so that it computes what a Keras `generation`
    runtime computed from the original file. Returns one note per kind of rewrite."""
    if generation >= 3:
        return []
    notes: dict[str, list[str]] = {}
    for layer in _layers(cfg):
        for rewrite in REWRITES:
            what = rewrite(layer)
            if what:
                notes.setdefault(what, []).append(str(layer.get("config", {}).get("name", layer["class_name"])))
    return [f"{what} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" for what, names in notes.items()]


def _legacy_activations(layer: dict) -> str | None:
    cfg = layer.get("config") or {}
    changed = None
    for key in ACTIVATION_KEYS:
        value = cfg.get(key)
        if isinstance(value, str) and value in LEGACY_ACTIVATIONS:
            name = LEGACY_ACTIVATIONS[value]
            # a dict, not a name: Keras 3 looks activation names up in its own table only
            registered = f"{LEGACY_PACKAGE}>{name}"
            cfg[key] = {"module": None, "class_name": "function", "config": registered, "registered_name": registered}
            changed = f"Keras 1/2 {value} kept (clip(0.2x + 0.5, 0, 1), not Keras 3's x/6 + 0.5)"
    return changed


def _thresholded_relu(layer: dict) -> str | None:
    """Keras 2's ThresholdedReLU (gone in Keras 3) is ReLU(threshold=theta): x where x > theta, else 0
    (Keras 3's ReLU keeps x == theta too, a set of measure zero)."""
    if layer.get("class_name") != "ThresholdedReLU":
        return None
    cfg = layer.get("config") or {}
    theta = cfg.pop("theta", 1.0)
    layer["class_name"] = "ReLU"
    layer["config"] = {k: v for k, v in cfg.items() if k in ("name", "trainable", "dtype")} | {"threshold": theta}
    return "ThresholdedReLU rebuilt as ReLU(threshold=theta)"


def _keras1_batchnorm_mode(layer: dict) -> str | None:
    """Keras 1 BatchNormalization mode 1 (per sample) and mode 2 (batch statistics at inference)
    compute something no later Keras layer does: refused rather than silently changed."""
    cfg = layer.get("config") or {}
    if layer.get("class_name") == "BatchNormalization" and cfg.get("mode") not in (None, 0):
        raise UnsupportedError(
            f"layer {cfg.get('name')!r}: Keras 1 BatchNormalization mode={cfg['mode']} normalizes with "
            "statistics of the inputs at inference, which no later Keras computes; only mode=0 converts"
        )
    return None


REWRITES: list[Callable[[dict], str | None]] = [_legacy_activations, _thresholded_relu]


def refuse_lost_semantics(raw_cfg: dict) -> None:
    """Raise for layers of the file as written (before normalization drops their arguments) whose
    writer's computation no Keras 3 layer can reproduce."""
    for layer in _layers(raw_cfg or {}):
        _keras1_batchnorm_mode(layer)


def _layers(cfg: dict) -> Iterator[dict]:
    """Every layer config of a model config: nested models and wrapped layers included."""
    inner = cfg.get("config")
    layers = inner.get("layers", []) if isinstance(inner, dict) else inner if isinstance(inner, list) else []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        sub = layer.get("config")
        if isinstance(sub, (list, dict)) and (isinstance(sub, list) or "layers" in sub):
            yield from _layers(layer)
            continue
        yield layer
        for key in ("layer", "backward_layer", "forward_layer", "cell"):
            wrapped = (sub or {}).get(key) if isinstance(sub, dict) else None
            if isinstance(wrapped, dict) and "class_name" in wrapped:
                yield wrapped
