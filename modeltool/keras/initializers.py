"""Keras initializers in numpy: fresh values for weights a transfer leaves without a source.

When weights move into a new architecture, the layers that have no counterpart (a new head) must
start as Keras would start them. Keras itself needs TensorFlow; these are the same distributions
(Glorot/He/LeCun, variance scaling, orthogonal, constants) computed with numpy, seeded, read from
the layer's own `*_initializer` config. The values are not bit-equal to Keras's RNG, only equal in
distribution, which is what an untrained layer needs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modeltool.errors import UnsupportedError

#: weight role -> the layer config key naming its initializer
ROLE_KEYS = {
    "kernel": "kernel_initializer", "bias": "bias_initializer", "recurrent_kernel": "recurrent_initializer",
    "gamma": "gamma_initializer", "beta": "beta_initializer", "moving_mean": "moving_mean_initializer",
    "moving_variance": "moving_variance_initializer", "embeddings": "embeddings_initializer",
    "depthwise_kernel": "depthwise_initializer", "pointwise_kernel": "pointwise_initializer",
    "alpha": "alpha_initializer",
}  # fmt: skip
#: what Keras uses when a config does not say
ROLE_DEFAULTS = {
    "kernel": "GlorotUniform", "bias": "Zeros", "recurrent_kernel": "Orthogonal", "gamma": "Ones", "beta": "Zeros",
    "moving_mean": "Zeros", "moving_variance": "Ones", "embeddings": "RandomUniform",
    "depthwise_kernel": "GlorotUniform", "pointwise_kernel": "GlorotUniform", "alpha": "Zeros",
}  # fmt: skip
#: Keras 1 initializer names (`init='uniform'`) -> Keras 3 classes
KERAS1_NAMES = {"Uniform": "RandomUniform", "Normal": "RandomNormal", "Zero": "Zeros", "One": "Ones"}
SCALING = {  # name -> (scale, mode, distribution)
    "GlorotUniform": (1.0, "fan_avg", "uniform"), "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
    "HeUniform": (2.0, "fan_in", "uniform"), "HeNormal": (2.0, "fan_in", "truncated_normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"), "LecunNormal": (1.0, "fan_in", "truncated_normal"),
}  # fmt: skip


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_")) if "_" in name or name.islower() else name


def _spec(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        name = {"glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform",
                "he_normal": "HeNormal", "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
                "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
                "truncated_normal": "TruncatedNormal"}.get(value, _camel(value))  # fmt: skip
        return KERAS1_NAMES.get(name, name), {}
    if isinstance(value, dict):
        name = str(value.get("class_name"))
        return KERAS1_NAMES.get(name, name), dict(value.get("config") or {})
    raise UnsupportedError(f"initializer {value!r} is not understood")


def _fans(shape: tuple) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated(rng: np.random.Generator, shape: tuple, mean: float, stddev: float) -> np.ndarray:
    out = rng.normal(mean, stddev, size=shape)
    bad = np.abs(out - mean) > 2 * stddev
    while bad.any():  # redraw beyond two standard deviations, as TF's truncated normal does
        out[bad] = rng.normal(mean, stddev, size=int(bad.sum()))
        bad = np.abs(out - mean) > 2 * stddev
    return out


def initial_value(init: Any, shape: tuple, rng: np.random.Generator, dtype: str = "float32") -> np.ndarray:
    """A fresh array for `shape` from a Keras initializer config (name string or class dict)."""
    name, cfg = _spec(init)
    shape = tuple(int(d) for d in shape)
    if name in ("Zeros", "Zero"):
        return np.zeros(shape, dtype)
    if name in ("Ones", "One"):
        return np.ones(shape, dtype)
    if name == "Constant":
        return np.full(shape, cfg.get("value", 0.0), dtype)
    if name == "RandomNormal":
        return rng.normal(cfg.get("mean", 0.0), cfg.get("stddev", 0.05), size=shape).astype(dtype)
    if name == "RandomUniform":
        return rng.uniform(cfg.get("minval", -0.05), cfg.get("maxval", 0.05), size=shape).astype(dtype)
    if name == "TruncatedNormal":
        return _truncated(rng, shape, cfg.get("mean", 0.0), cfg.get("stddev", 0.05)).astype(dtype)
    if name in ("Identity", "IdentityInitializer"):
        return (cfg.get("gain", 1.0) * np.eye(*shape[-2:])).reshape(shape).astype(dtype)
    if name == "Orthogonal":
        rows, cols = int(math.prod(shape[:-1])) if len(shape) > 1 else 1, shape[-1] if shape else 1
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        q = q if rows >= cols else q.T
        return (cfg.get("gain", 1.0) * q[:rows, :cols]).reshape(shape).astype(dtype)
    if name in SCALING or name == "VarianceScaling":
        scale, mode, dist = SCALING.get(name, (cfg.get("scale", 1.0), cfg.get("mode", "fan_in"),
                                               cfg.get("distribution", "truncated_normal")))  # fmt: skip
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2)
        var = scale / max(1.0, n)
        if dist == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, size=shape).astype(dtype)
        if dist == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(var), size=shape).astype(dtype)
        return _truncated(rng, shape, 0.0, math.sqrt(var) / 0.87962566103423978).astype(dtype)
    raise UnsupportedError(f"initializer {name} has no numpy equivalent in modeltool; give the weight a source")


def layer_initializer(layer_cfg: dict[str, Any], role: str) -> Any:
    """The initializer a layer config names for a role (wrappers' inner layer included)."""
    cfg = layer_cfg
    inner = cfg.get("layer")
    if isinstance(inner, dict) and ROLE_KEYS.get(role, "") not in cfg:
        cfg = inner.get("config") or {}
    cell = cfg.get("cell")
    if isinstance(cell, dict) and ROLE_KEYS.get(role, "") not in cfg:
        cfg = cell.get("config") or cfg
    return cfg.get(ROLE_KEYS.get(role, ""), ROLE_DEFAULTS.get(role, "GlorotUniform"))


def fresh(layer_cfg: dict[str, Any], role: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A layer's weight as Keras would initialize it (LSTM forget-gate bias of ones included)."""
    value = initial_value(layer_initializer(layer_cfg, role), shape, rng)
    units = layer_cfg.get("units") or (layer_cfg.get("layer") or {}).get("config", {}).get("units")
    forget = layer_cfg.get("unit_forget_bias", (layer_cfg.get("layer") or {}).get("config", {}).get("unit_forget_bias"))
    if role == "bias" and forget and units and shape and shape[-1] == 4 * units:
        value[..., units : 2 * units] = 1.0
    return value
