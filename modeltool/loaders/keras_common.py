"""What every Keras container shares: config -> graph, weights -> layers, training -> metadata."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from modeltool.errors import LoadError
from modeltool.formats import Format, describe
from modeltool.ir import Graph, Metadata, Model, Node, TensorSpec, Weight
from modeltool.keras.graph import build_graph, is_model_class
from modeltool.keras.trust import library_of, pip_name
from modeltool.keras.weights import attach

WeightsLoader = Callable[[Graph | None], list[Weight]]


def keras_model(
    path: str,
    fmt: Format,
    model_cfg: dict[str, Any] | None,
    writer: dict[str, str],
    training: dict[str, Any] | None = None,
    weights_loader: WeightsLoader | None = None,
    extra: dict[str, Any] | None = None,
) -> Model:
    """Assemble a Model from a Keras architecture config and (optionally) its stored weights."""
    warnings: list[str] = []
    graph = None
    if model_cfg is not None:
        graph = config_graph(path, model_cfg, warnings)
    weights = weights_loader(graph) if weights_loader is not None else []
    attach(graph, weights)
    meta = Metadata(
        format=fmt,
        format_description=describe(fmt),
        file_size=path_size(path),
        writer={k: str(v) for k, v in writer.items() if v is not None},
        training=training,
        extra=extra or {},
    )
    return Model(path, meta, graph, weights, [], warnings, config=model_cfg)


def config_graph(path: str, model_cfg: dict[str, Any], warnings: list[str]) -> Graph:
    if not isinstance(model_cfg, dict) or "class_name" not in model_cfg:
        raise LoadError(f"{path}: model config has no class_name")
    cls = model_cfg["class_name"]
    cfg = model_cfg.get("config")
    has_layers = isinstance(cfg, list) or (isinstance(cfg, dict) and "layers" in cfg)
    if is_model_class(cls) and has_layers:
        try:
            return build_graph(model_cfg)
        except LoadError as exc:
            raise LoadError(f"{path}: {exc}") from exc
        except RecursionError as exc:
            raise LoadError(f"{path}: model config nests too deeply") from exc
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            raise LoadError(f"{path}: malformed model config ({type(exc).__name__}: {exc})") from exc
    if "module" not in model_cfg and "registered_name" not in model_cfg:
        raise LoadError(f"{path}: unknown model class {cls!r}: expected Sequential, Functional or Model with layers")
    # A subclassed model or a custom Model class: its layers live in Python code, not in the file.
    name = (cfg or {}).get("name", cls) if isinstance(cfg, dict) else cls
    library = library_of(model_cfg)
    flags, attrs = ["custom", "subclassed"], {}
    if library is not None:
        flags.append("library")
        attrs["library"] = library
        warnings.append(
            f"{cls} is a {library} class: its layers are {library}'s code, not in the file; with {library} "
            f"installed, inspect shows them (pip install {pip_name(library)})"
        )
    else:
        warnings.append(
            f"{cls} is a subclassed/custom model: its architecture is Python code, not in the file; "
            "layers and shapes are unknown (weights are listed as stored)"
        )
    node = Node(str(name), cls, cfg if isinstance(cfg, dict) else {}, flags=flags, params=None,
                trainable_params=None, output_shapes=[None], attrs=attrs)  # fmt: skip
    inputs = build_config_inputs(model_cfg)
    node.inbound = [[s.name for s in inputs]] if inputs else []
    return Graph([node], inputs, [], "layer", str(name))


def build_config_inputs(model_cfg: dict[str, Any]) -> list[TensorSpec]:
    """The inputs a subclassed model was built with, from Keras 3's `build_config` (`input_shape`:
    one shape, a list of shapes, or a dict of them by name); the dtype is not recorded there."""
    build = model_cfg.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if isinstance(shape, dict):
        named = [(str(k), v) for k, v in shape.items()]
    elif isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) or s is None for s in shape):
        named = [(f"input_{i}", s) for i, s in enumerate(shape)] if len(shape) > 1 else [("input", shape[0])]
    elif isinstance(shape, (list, tuple)):
        named = [("input", shape)]
    else:
        return []
    out = []
    for name, dims in named:
        if isinstance(dims, (list, tuple)) and all(d is None or isinstance(d, int) for d in dims):
            out.append(TensorSpec(name, tuple(dims), None))
    return out


def training_summary(optimizer: Any, loss: Any, metrics: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """Optimizer, learning rate, loss and metrics as plain values, whatever Keras wrote them."""
    opt_name, lr = None, None
    if isinstance(optimizer, dict):
        ocfg = optimizer.get("config") if isinstance(optimizer.get("config"), dict) else {}
        opt_name = optimizer.get("class_name") or ocfg.get("name")
        opt_name = opt_name if isinstance(opt_name, str) else None
        lr = ocfg.get("learning_rate", ocfg.get("lr"))
        if isinstance(lr, dict):
            lr = lr.get("class_name")
    elif isinstance(optimizer, str):
        opt_name = optimizer
    if isinstance(opt_name, str) and opt_name.startswith("Custom>"):
        opt_name = opt_name[len("Custom>") :]
    return {
        "optimizer": opt_name,
        "learning_rate": lr,
        "loss": _plain(loss),
        "metrics": _plain(metrics),
        "raw": raw,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if "class_name" in value:
            inner = value.get("config")
            if isinstance(inner, str):  # a function serialized by name: {"class_name": "function", "config": "mse"}
                return inner
            return (inner.get("name") if isinstance(inner, dict) else None) or value["class_name"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def path_size(path: str) -> int:
    """Bytes of a file, or of every file under a directory (SavedModels, checkpoint folders)."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)
