"""A runnable Keras 3 model rebuilt from the IR: the start of every conversion of a Keras source.

Keras 3 refuses many files that older Keras wrote (list-style Sequential configs, Keras 1 argument
names, CuDNN layers, Keras 1 weight layouts). modeltool does not hand the file to Keras: it hands
Keras a config it has normalized (`legacy.normalize_layer` plus the structural rewrites below) and
then sets every layer's weights itself from the IR, converting legacy layouts on the way
(`legacy_arrays`). Code from the file is never run: Lambda layers need `unsafe=True`, custom
classes must come from the user's own module.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from types import ModuleType
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import LoadError, UnsafeContentError, UnsupportedError, UsageError
from modeltool.formats import Format
from modeltool.ir import Model, Weight
from modeltool.keras.graph import call_keys, is_model_class, skip_first_nodes, tensor_keys
from modeltool.keras.layers import sized as layer_sized
from modeltool.keras.legacy import normalize_layer
from modeltool.keras.legacy_arrays import convert_layer_arrays
from modeltool.keras.semantics import (
    legacy_objects,
    preserve_writer_semantics,
    refuse_lost_semantics,
    register_legacy_objects,
    writer_generation,
)

RNN_CLASSES = {"LSTM", "GRU", "SimpleRNN"}
CUDNN_CLASSES = {"CuDNNLSTM": "LSTM", "CuDNNGRU": "GRU"}
#: arguments every Keras 3 layer takes besides those of its own __init__
BASE_LAYER_ARGS = {"name", "trainable", "dtype", "autocast", "input_dim", "input_shape", "batch_size"}


# ---------------------------------------------------------------- config: any Keras -> Keras 3


def keras3_config(model_cfg: dict[str, Any], *, unroll_rnn: bool = False, input_shapes: list | None = None) -> dict:
    """A deep copy of a model config that Keras 3 can deserialize.

    `unroll_rnn` unrolls every recurrent layer (a static loop TFLite converts to builtin ops);
    `input_shapes` replaces the batch shapes of the model inputs (None dims stay dynamic)."""
    cfg = copy.deepcopy(model_cfg)
    cfg.pop("keras_version", None)
    cfg.pop("backend", None)
    # training settings change no inference; tf.keras 2.x optimizers carry arguments Keras 3 refuses
    # (`jit_compile`, `is_legacy_optimizer`), as Keras's own load_model(compile=False) skips them
    cfg.pop("compile_config", None)
    _model(cfg, unroll_rnn)
    if input_shapes:
        _set_input_shapes(cfg, input_shapes)
    return cfg


def _model(entry: dict, unroll_rnn: bool) -> None:
    entry["class_name"] = "Functional" if entry.get("class_name") == "Model" else entry.get("class_name")
    entry.pop("module", None)  # resolved through MODEL_CLASSES below, whoever wrote the file
    entry.pop("registered_name", None)
    cfg = entry.get("config")
    if entry["class_name"] == "Sequential" or isinstance(cfg, list):
        entry["class_name"] = "Sequential"
        layers = cfg if isinstance(cfg, list) else cfg.get("layers", [])
        name = None if isinstance(cfg, list) else cfg.get("name")
        entry["config"] = cfg = {"name": name or "sequential", "layers": layers}
    for i, layer in enumerate(cfg.get("layers", [])):
        cfg["layers"][i] = _layer(layer, unroll_rnn)
    if entry["class_name"] == "Sequential":
        _sequential_input(cfg)
    for layer in cfg.get("layers", [])[1 if entry["class_name"] == "Sequential" else 0 :]:
        if layer["class_name"] != "InputLayer":
            layer["config"].pop("batch_shape", None)  # only InputLayer takes it in Keras 3
    if entry["class_name"] != "Sequential":
        _shift_nested_node_indices(cfg)
        _initial_states_as_kwargs(cfg)


#: layers whose legacy call lists [inputs, *initial_state] as one flat list of tensors
STATEFUL_CALLS = {"LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Bidirectional", "RNN"}


def _initial_states_as_kwargs(cfg: dict) -> None:
    """Keras 2 writes `lstm(x, initial_state=[h, c])` as one node of three tensors; Keras 3 reads a
    legacy node as one list argument and refuses it ("expects 1 input, received 3"). Such nodes are
    rewritten in Keras 3's own node format: the first tensor as argument, the rest as initial_state.
    (The tensors' shapes in that format are placeholders: Keras swaps in the real tensors by history.)"""
    for lc in cfg.get("layers", []):
        if lc.get("class_name") not in STATEFUL_CALLS:
            continue
        nodes = lc.get("inbound_nodes") or []
        for i, node in enumerate(nodes):
            if not (isinstance(node, list) and len(node) > 1 and all(isinstance(t, list) for t in node)):
                continue
            tensors = [_keras_tensor(t) for t in node]
            kwargs = dict(node[-1][3]) if len(node[-1]) > 3 and isinstance(node[-1][3], dict) else {}
            kwargs.pop("initial_state", None)
            nodes[i] = {"args": [tensors[0]], "kwargs": {**kwargs, "initial_state": tensors[1:]}}


def _keras_tensor(ref: list) -> dict:
    history = [ref[0], int(ref[1]), int(ref[2])]
    return {"class_name": "__keras_tensor__", "config": {"shape": [None], "dtype": "float32", "keras_history": history}}


def _single_boundary(cfg: dict) -> None:
    """Keras 2 writes a nested model's one output as a list of one `[layer, node, tensor]`, and
    unpacks it when called; Keras 3 returns a list of one tensor, which the next layer takes for
    two inputs (Teachable Machine's MobileNetV2 inside a Sequential). Keras 3's own spelling of a
    single output is the bare triple."""
    for key in ("input_layers", "output_layers"):
        value = cfg.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list) and len(value[0]) == 3:
            if isinstance(value[0][0], str):
                cfg[key] = value[0]


def _shift_nested_node_indices(cfg: dict) -> None:
    """Keras 2 counts a nested model's own construction as its node 0 and configs refer to its
    calls from 1 on; Keras 3 counts from 0. Shift those references (see graph.skip_first_nodes)."""
    by_name = {lc.get("name") or lc["config"].get("name"): lc for lc in cfg.get("layers", [])}
    calls = {n: call_keys(lc) for n, lc in by_name.items()}
    _, shifts = skip_first_nodes(by_name, calls, tensor_keys(cfg.get("output_layers")), report=True)
    if not shifts:
        return
    for lc in cfg["layers"]:
        for node in lc.get("inbound_nodes") or []:
            if isinstance(node, list):
                for item in node:
                    if isinstance(item, list) and len(item) >= 3 and item[0] in shifts:
                        item[1] = int(item[1]) - shifts[item[0]]
    for key in ("output_layers", "input_layers"):
        _shift_triples(cfg.get(key), shifts)


def _shift_triples(value: Any, shifts: dict[str, int]) -> None:
    if isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str):
            if value[0] in shifts:
                value[1] = int(value[1]) - shifts[value[0]]
            return
        for v in value:
            _shift_triples(v, shifts)


def _layer(layer: dict, unroll_rnn: bool) -> dict:
    layer = normalize_layer(layer)
    cls = layer["class_name"]
    if cls in CUDNN_CLASSES:  # GPU-only layers of Keras 2: the same maths as the portable layer
        layer["class_name"] = CUDNN_CLASSES[cls]
        layer["config"].update(activation="tanh", recurrent_activation="sigmoid", unroll=False)
        if cls == "CuDNNGRU":
            layer["config"]["reset_after"] = True
    if is_model_class(layer["class_name"]) and isinstance(layer.get("config"), (dict, list)):
        _model(layer, unroll_rnn)
        _single_boundary(layer["config"])
    for key in ("layer", "backward_layer"):
        inner = layer["config"].get(key)
        if isinstance(inner, dict) and "class_name" in inner:
            layer["config"][key] = _layer(inner, unroll_rnn)
            if not inner.get("module") and layer_sized(inner["class_name"]):
                # Keras 3 finds a wrapped built-in layer only by module (a config written without Keras)
                inner["module"], inner["registered_name"] = "keras.layers", None
    if layer["class_name"] == "Lambda":
        _legacy_lambda(layer["config"])
    if unroll_rnn and layer["class_name"] in RNN_CLASSES:
        layer["config"]["unroll"] = True
    return layer


def _legacy_lambda(cfg: dict) -> None:
    """Keras 2 Lambda configs (`function` = [bytecode, defaults, closure], `function_type`) in the
    Keras 3 spelling. Only reached with --unsafe: deserializing it runs the bytecode."""
    for key in ("function", "output_shape"):
        kind = cfg.pop(f"{key}_type" if key == "function" else "output_shape_type", None)
        value = cfg.get(key)
        if kind == "lambda" and isinstance(value, (list, tuple)) and value:
            code, defaults, closure = (list(value) + [None, None])[:3]
            cfg[key] = {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults, "closure": closure}}
    cfg.pop("module", None)
    cfg.pop("output_shape_module", None)


def _sequential_input(cfg: dict) -> None:
    """Keras 3 Sequential wants an explicit InputLayer; older configs put the shape on layer 0."""
    layers = cfg["layers"]
    if not layers or layers[0]["class_name"] == "InputLayer":
        return
    first = layers[0]["config"]
    shape = first.pop("batch_shape", None)
    if shape is None:
        return
    dtype = first.pop("input_dtype", None) or (first.get("dtype") if isinstance(first.get("dtype"), str) else "float32")
    if layers[0]["class_name"] == "Embedding" and dtype.startswith("float"):
        dtype = "int32"
    name = f"{first.get('name', 'input')}_input"
    layers.insert(0, {"class_name": "InputLayer", "config": {"batch_shape": shape, "dtype": dtype, "name": name}})


def _set_input_shapes(cfg: dict, shapes: list) -> None:
    inputs = [lc for lc in cfg["config"]["layers"] if lc["class_name"] == "InputLayer"]
    for lc, shape in zip(inputs, shapes):
        if shape is not None:
            lc["config"]["batch_shape"] = list(shape)


# ---------------------------------------------------------------- safety


def check_safe(model: Model, *, unsafe: bool, custom_objects: dict[str, Any]) -> list[str]:
    """Refuse (exit 2) a model whose layers hold code, unless the user allowed it. Returns warnings."""
    from modeltool.keras.safety import check_archive_members

    check_archive_members(model.path, model.metadata.extra)  # zip-slip names, pickled .npz members
    warnings = []
    if model.graph is None:
        raise UnsupportedError(f"{model.path}: no architecture in this file; give one (JSON/YAML/H5/.keras)")
    for path, node in model.graph.walk():
        if "lambda" in node.flags:
            if not unsafe:
                raise UnsafeContentError(
                    f"{model.path}: layer {path!r} is a Lambda layer holding Python code; running it needs --unsafe "
                    "(only for files you trust)"
                )
            warnings.append(f"layer {path!r}: running the Lambda's Python code from the file (--unsafe)")
        elif "custom" in node.flags and not _custom_known(node.op, node.config, custom_objects):
            from modeltool.keras.trust import trust_hint

            raise UnsupportedError(
                f"{model.path}: layer {path!r} is of custom class {node.op!r}; pass --custom-objects module.py "
                f"defining it{trust_hint(model.config, node.op)} (code from the model file is never run)"
            )
    _check_references(model, unsafe, custom_objects, warnings)
    _check_size(model)
    return warnings


def _check_references(model: Model, unsafe: bool, custom_objects: dict[str, Any], warnings: list[str]) -> None:
    """Objects and functions named by module outside Keras: Keras would import them."""
    from modeltool.keras.safety import foreign_references

    for where, target in foreign_references(model.config or {}):
        leaf = target.replace(">", ".").rsplit(".", 1)[-1]
        if leaf in custom_objects or target in custom_objects:
            continue
        if not unsafe:
            raise UnsafeContentError(
                f"{model.path}: the config at {where} names {target!r}, outside Keras; deserializing it would import "
                "and run that code. Pass --custom-objects with your own definition, or --unsafe for a file you trust"
            )
        warnings.append(f"{where}: importing {target!r} named by the file (--unsafe)")


def _check_size(model: Model) -> None:
    """A config whose layers would allocate absurd weights is refused before Keras allocates them."""
    from modeltool.limits import MAX_MODEL_PARAMS, check_elements

    total = 0
    for path, node in model.graph.walk() if model.graph else []:
        for spec in node.attrs.get("weight_specs") or []:
            if all(d is not None for d in spec.shape):
                total += check_elements(spec.shape, f"{model.path}: layer {path!r} weight {spec.role!r}")
    if total > MAX_MODEL_PARAMS:
        raise UnsupportedError(
            f"{model.path}: the architecture declares {total:.3g} parameters, over modeltool's limit of "
            f"{MAX_MODEL_PARAMS:.3g} (a corrupted or hostile config)"
        )


def _custom_known(cls: str, cfg: dict, custom_objects: dict[str, Any]) -> bool:
    if cls in custom_objects or cls.split(">")[-1] in custom_objects:
        return True
    for key in ("layer", "backward_layer"):
        inner = cfg.get(key) if isinstance(cfg, dict) else None
        if isinstance(inner, dict) and inner.get("class_name") in custom_objects:
            return True
    return any(name.split(">")[-1] == cls for name in custom_objects)


def model_objects(model: Model, custom_objects: str | os.PathLike | None, trust: tuple[str, ...] = (),
                  doing: str = "running it") -> dict[str, Any]:
    """The objects a model's config may name: classes of the trusted model libraries it uses
    (`keras.trust`, resolved after importing the installed package) and the user's own module's,
    which win on a name both define."""
    from modeltool.keras.trust import trusted_objects

    objects = trusted_objects(model.path, model.config, trust, doing) if model.config is not None else {}
    objects.update(load_custom_objects(custom_objects))
    return objects


def load_custom_objects(path: str | os.PathLike | None) -> dict[str, Any]:
    """Every class and function a user's module defines, keyed by name (and `package>Name`)."""
    if path is None:
        return {}
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"{path}: --custom-objects module not found")
    spec = importlib.util.spec_from_file_location(f"modeltool_custom_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: not an importable Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    require("keras", "importing your custom objects")  # first, quietly: such modules import Keras themselves
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's own code: report, don't crash
        raise UsageError(f"{path}: importing the custom-objects module failed ({type(exc).__name__}: {exc})") from exc
    return _module_objects(module)


def _module_objects(module: ModuleType) -> dict[str, Any]:
    objects: dict[str, Any] = {}
    explicit = getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(explicit, dict):
        objects.update(explicit)
    for name, value in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue
        objects.setdefault(name, value)
    return objects


# ---------------------------------------------------------------- build


def build(
    model: Model,
    *,
    custom_objects: dict[str, Any] | None = None,
    unsafe: bool = False,
    unroll_rnn: bool = False,
    input_shapes: list | None = None,
    notes: list[str] | None = None,
    with_weights: bool = True,
) -> Any:
    """A Keras 3 model with the IR's architecture and weights, ready to run in inference mode.
    What had to be changed on the way (dropped legacy arguments) is appended to `notes`.
    `with_weights=False` builds the architecture alone (its shapes, for `inspect --custom-objects`)."""
    custom_objects = dict(custom_objects or {})
    check_safe(model, unsafe=unsafe, custom_objects=custom_objects)
    if model.config is None:
        raise UnsupportedError(f"{model.path}: {model.format} holds no architecture to rebuild a model from")
    keras = require("keras", "rebuilding the model to convert or run it")
    if keras.backend.backend() == "tensorflow":  # JAX (the light install) needs no TensorFlow
        require("tensorflow", "rebuilding the model to convert or run it")
    if is_subclassed(model):
        return _native_subclassed(model, keras, custom_objects, unsafe)
    cfg = keras3_config(model.config, unroll_rnn=unroll_rnn, input_shapes=input_shapes)
    generation = writer_generation(model)
    if generation < 3 and isinstance(model.config.get("compile_config"), dict) and notes is not None:
        notes.append("the training settings (compile_config) were dropped: they change no inference")
    if generation < 3:
        refuse_lost_semantics(model.config)
        kept = preserve_writer_semantics(cfg, generation)
        if kept and notes is not None:
            notes.append(f"Keras {generation} semantics kept: {'; '.join(kept)}")
    custom_objects.update({k: v for k, v in legacy_objects().items() if k not in custom_objects})
    register_legacy_objects()  # so that the model serializes them by name when a Keras target is written
    dropped = _fit_to_keras3(cfg, keras)
    if dropped and notes is not None:
        notes.append(f"arguments Keras 3 does not take were dropped: {'; '.join(dropped[:8])}")
    custom_objects.update(_registered_aliases(cfg, custom_objects))
    custom_objects.setdefault("Functional", keras.Model)  # Model.from_config builds functional configs
    custom_objects.setdefault("Sequential", keras.Sequential)
    try:
        with deferred_initialization(keras):
            native = keras.saving.deserialize_keras_object(cfg, custom_objects=custom_objects, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - Keras/TF raise anything from a bad config; report it as such
        initialize_pending(keras)
        hint = ""
        if unsafe and any("lambda" in n.flags for _, n in model.graph.walk()):  # type: ignore[union-attr]
            hint = "; Lambda bytecode only loads on the Python version that wrote it"
        raise LoadError(f"{model.path}: Keras 3 cannot rebuild this architecture ({_short(exc)}{hint})") from exc
    try:
        if not with_weights:
            return native
        if not model.weights and needs_weights(model):
            raise UnsupportedError(
                f"{model.path}: architecture without weights; give the weights with --weights-from (JSON/YAML)"
            )
        try:
            set_weights(native, model.weights, model.path)
        except LoadError:
            if not _load_keras3_weights(native, model):
                raise
    finally:
        initialize_pending(keras)
    return native


def deferred_initialization(keras: Any) -> Any:
    """On JAX, a scope in which layers are built without running their weights' initializers: each
    random initializer is compiled by XLA on first use (MobileNetV2: 8 s, for values `set_weights`
    overwrites at once). This is Keras's own deferred initialization (variables created in a
    StatelessScope); `initialize_pending` initializes what the weights did not fill. Other backends
    build as they always did."""
    if keras.backend.backend() != "jax":
        return nullcontext()
    return keras.StatelessScope(initialize_variables=False)


def initialize_pending(keras: Any) -> None:
    """Initialize the variables a deferred build left without a value (seed states, a layer the
    weights did not cover), the usual way."""
    if keras.backend.backend() != "jax":
        return
    from keras.src.backend.common import global_state

    pending = global_state.get_global_attribute("uninitialized_variables") or []
    global_state.set_global_attribute("uninitialized_variables", [])
    for variable in pending:
        if getattr(variable, "_value", None) is None:
            variable._deferred_initialize()  # noqa: SLF001 - Keras's own hook for deferred variables


def needs_weights(model: Model) -> bool:
    """True when some layer of the architecture has weights (a model of parameter-free layers,
    activations or reshapes only, is complete without any)."""
    if model.graph is None:
        return True
    return any(node.attrs.get("weight_specs") or "custom" in node.flags for _, node in model.graph.walk())


def keras3_weights_file(model: Model) -> tuple[str, str | None] | None:
    """(file, member inside a .keras zip or None) of a Keras 3 weights layout behind the model."""
    if model.format == Format.KERAS_V3:
        return model.path, "model.weights.h5"
    source = model.metadata.extra.get("weights_from")
    if source and str(source).endswith(".weights.h5"):
        return str(source), None
    return None


def _load_keras3_weights(native: Any, model: Model) -> bool:
    """Layers whose weights live in sub-objects modeltool has no layout for (MultiHeadAttention's
    query/key/value, composite custom layers) are loaded by Keras's own attribute-path matcher from
    the Keras 3 weights file of the same architecture: an HDF5 of arrays, no code. True on success."""
    import tempfile
    import zipfile

    where = keras3_weights_file(model)
    if where is None:
        return False
    path, member = where
    with tempfile.TemporaryDirectory() as tmp:
        target = path
        if member is not None:
            target = os.path.join(tmp, "model.weights.h5")
            with zipfile.ZipFile(path) as zf, open(target, "wb") as out:
                out.write(zf.read(member))
        try:
            native.load_weights(target)
        except Exception:  # noqa: BLE001 - the layouts really differ: the caller reports its own error
            return False
    return True


def is_subclassed(model: Model) -> bool:
    """A model whose one node is a custom class with no layers in the file: Keras itself builds it."""
    nodes = model.graph.nodes if model.graph is not None else []
    if len(nodes) == 1 and "subclassed" in nodes[0].flags:
        return True
    return len(nodes) == 1 and "custom" in nodes[0].flags and nodes[0].subgraph is None and not model.graph.inputs


def _native_subclassed(model: Model, keras: Any, custom_objects: dict[str, Any], unsafe: bool) -> Any:
    """A subclassed model's layers exist only in the user's class: Keras itself must build it,
    from a `.keras` archive, with that class given (check_safe made sure it is)."""
    if model.format != Format.KERAS_V3:
        raise UnsupportedError(f"{model.path}: a subclassed model can only be rebuilt from a .keras archive")
    try:
        return keras.saving.load_model(model.path, custom_objects=custom_objects, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - the user's class raises what it likes
        raise LoadError(f"{model.path}: Keras cannot rebuild the subclassed model ({_short(exc)})") from exc


def _registered_aliases(value: Any, custom_objects: dict[str, Any]) -> dict[str, Any]:
    """`package>Name` keys for the user's classes, as the config refers to them."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for reg in (value.get("registered_name"), value.get("class_name")):
            if isinstance(reg, str) and ">" in reg and reg not in custom_objects:
                short = reg.split(">")[-1]
                if short in custom_objects:
                    out[reg] = custom_objects[short]
        for v in value.values():
            out.update(_registered_aliases(v, custom_objects))
    elif isinstance(value, list):
        for v in value:
            out.update(_registered_aliases(v, custom_objects))
    return out


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.rsplit("Exception encountered:", 1)[-1].strip()
    return f"{type(exc).__name__}: {text[:300]}"


def _fit_to_keras3(cfg: dict, keras: Any) -> list[str]:
    """Remove arguments a Keras 3 layer class does not take (Keras 1/2 leftovers), layer by layer,
    and name the module of built-in layers that wrappers hold (Keras 3 needs it to find them).
    Returns "layer: argument" for every argument dropped."""
    dropped = _fit_model_configs(cfg)
    for layer in _all_layers(cfg):
        cls = getattr(keras.layers, layer["class_name"], None)
        if cls is not None and not layer.get("module"):
            layer["module"], layer["registered_name"] = "keras.layers", None  # wrapped layers need it
        if cls is None or not inspect.isclass(cls) or layer["class_name"] in ("InputLayer", "Lambda"):
            continue
        allowed = accepted_arguments(cls) | BASE_LAYER_ARGS
        for key in list(layer["config"]):
            if key not in allowed:
                value = layer["config"].pop(key)
                if value not in (None, False, 0, 0.0, "", [], {}):
                    dropped.append(f"{layer['config'].get('name', layer['class_name'])}: {key}={value!r}")
    return dropped


def accepted_arguments(cls: type) -> set[str]:
    """The constructor arguments of a Keras layer class, those its bases take through `**kwargs`
    included (LSTM passes `zero_output_for_mask` on to RNN)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break  # this constructor passes nothing further up
    return names


#: what Keras 3's Functional/Sequential.from_config read; anything else (compile settings such as
#: `jit_compile` that some Keras 3 versions wrote into the model config) does not change inference
MODEL_CONFIG_KEYS = {"name", "layers", "input_layers", "output_layers", "trainable", "build_input_shape", "dtype"}


def _fit_model_configs(cfg: dict, path: str = "") -> list[str]:
    inner = cfg.get("config")
    if not isinstance(inner, dict):
        return []
    name = path or str(inner.get("name", "model"))
    dropped = []
    for key in [k for k in inner if k not in MODEL_CONFIG_KEYS]:
        value = inner.pop(key)
        if value not in (None, False, 0, "", [], {}):
            dropped.append(f"{name}: {key}={value!r}")
    for layer in inner.get("layers", []):
        if is_model_class(layer.get("class_name", "")):
            dropped += _fit_model_configs(layer, f"{name}/{layer.get('config', {}).get('name', '')}")
    return dropped


def _all_layers(cfg: dict) -> Iterator[dict]:
    inner = cfg.get("config")
    if not isinstance(inner, dict):
        return
    for layer in inner.get("layers", []):
        if is_model_class(layer["class_name"]):
            yield from _all_layers(layer)
            continue
        yield layer
        for key in ("layer", "backward_layer"):
            sub = layer["config"].get(key)
            if isinstance(sub, dict) and "class_name" in sub:
                yield sub


# ---------------------------------------------------------------- weights


def leaf_layers(native: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) of every layer holding weights, nested models walked ("outer/inner/dense")."""
    for layer in getattr(native, "layers", []):
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Sequential", "Model"):
            yield from leaf_layers(layer, path + "/")
        elif layer.weights:
            yield path, layer


def set_weights(native: Any, weights: list[Weight], source: str) -> None:
    """Assign the IR's weights to the Keras model, layer by layer, legacy layouts converted."""
    by_layer: dict[str, list[Weight]] = {}
    for w in weights:
        by_layer.setdefault(w.layer or "", []).append(w)
    used: set[str] = set()
    for path, layer in leaf_layers(native):
        stored = by_layer.get(path)
        if stored is None:
            stored = by_layer.get(path.split("/")[-1])
        if stored is None:
            raise LoadError(f"{source}: no stored weights for layer {path!r}")
        used.add(path)
        expected = [tuple(v.shape) for v in layer.weights]
        arrays = [w.value() for w in stored]
        if [tuple(w.shape) for w in stored] != expected:
            # Keras 1/Theano layouts were converted by the loader (`legacy_arrays.migrate_layouts`); what
            # is left is the cuDNN layout, converted here where a CuDNN layer becomes an LSTM/GRU
            inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
            arrays = convert_layer_arrays(type(layer).__name__, arrays, expected, path, source,
                                          cell=type(inner).__name__ if inner is not None else None)  # fmt: skip
        layer.set_weights(arrays)
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            # Normalization (and other preprocessing layers) compute what they apply from their stored
            # state here, as Keras's own loader does; skipping it silently leaves mean 0 / variance 1
            finalize()
    leftover = [p for p in by_layer if p and p not in used and p.split("/")[-1] not in {u.split("/")[-1] for u in used}]
    if leftover:
        raise LoadError(f"{source}: stored weights of {', '.join(leftover[:5])} match no layer of the architecture")


def model_arrays(native: Any) -> dict[str, np.ndarray]:
    """Every weight of a Keras model as numpy, keyed by its variable path (for tests and diffs)."""
    return {v.path: np.asarray(v.numpy()) for v in native.weights}
