"""The `check` policy file: YAML, schema version 1, validated with errors that name the key.

A policy states what a model must be before it ships (docs/check.md has the whole schema and an
example). Every key is optional; unknown keys are errors (a misspelt rule must not pass silently).
Paths inside the policy (`parity.reference`, `parity.input`) are relative to the policy file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from modeltool.errors import UsageError

NUMBER = (int, float)
TENSOR = {"name": str, "dtype": str, "shape": "shape"}
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SCHEMA: dict[str, Any] = {
    "version": int,
    "interface": {"signature": str, "inputs": [TENSOR], "outputs": [TENSOR], "dynamic_batch": bool},
    "size": {"max_file_mb": NUMBER, "max_params": int, "min_params": int},
    "weights": {"finite": bool},
    "onnx": {"opset": {"min": int, "max": int}, "allowed_ops": [str], "forbidden_ops": [str], "checker": bool},
    "tflite": {"allow_flex": bool, "allow_custom_ops": bool, "quantization": QUANTIZATIONS, "gpu_delegate": bool},
    "parity": {"reference": str, "atol": NUMBER, "rtol": NUMBER, "input": str, "seed": int, "batch": int,
               "signature": str},  # fmt: skip
    "latency": {"batch": int, "runs": int, "warmup": int, "max_median_ms": NUMBER, "device": ("cpu", "cuda", "auto")},
}
#: a policy file larger than this is not a policy (bounded resources)
MAX_POLICY_BYTES = 1 << 20


class PolicyError(UsageError):
    """The policy file is missing, malformed or breaks the schema (exit 2)."""


@dataclass
class Policy:
    data: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def resolve(self, value: str | None) -> str | None:
        """A path from the policy, relative to the policy file's folder."""
        if value is None or self.path is None or os.path.isabs(value):
            return value
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), value)


def _type_name(expected: Any) -> str:
    if expected is bool:
        return "true or false"
    if expected is int:
        return "an integer"
    if expected == NUMBER:
        return "a number"
    if expected is str:
        return "a string"
    if isinstance(expected, tuple):
        return "one of " + ", ".join(map(str, expected))
    if isinstance(expected, list):
        return "a list"
    if expected == "shape":
        return "a list of integers or null"
    return "a mapping"


def _check(value: Any, expected: Any, where: str, source: str) -> None:
    def fail(extra: str = "") -> None:
        raise PolicyError(f"{source}: {where}: expected {_type_name(expected)}, got {value!r}{extra}")

    if isinstance(expected, dict):
        if not isinstance(value, dict):
            fail()
        for key, item in value.items():
            if key not in expected:
                raise PolicyError(f"{source}: {where + '.' if where else ''}{key}: unknown key; expected one of "
                                  f"{', '.join(expected)}")  # fmt: skip
            _check(item, expected[key], f"{where + '.' if where else ''}{key}", source)
    elif isinstance(expected, list):
        if not isinstance(value, list):
            fail()
        for i, item in enumerate(value):
            _check(item, expected[0], f"{where}[{i}]", source)
    elif expected == "shape":
        if not isinstance(value, list) or not all(d is None or (isinstance(d, int) and d >= 0) for d in value):
            fail()
    elif isinstance(expected, tuple) and all(isinstance(e, str) for e in expected):
        if value not in expected:
            fail()
    elif expected is bool:
        if not isinstance(value, bool):
            fail()
    elif expected is int or expected == NUMBER:
        if isinstance(value, bool) or not isinstance(value, expected if expected is not int else int) or value < 0:
            fail(" (must be >= 0)" if isinstance(value, NUMBER) and not isinstance(value, bool) else "")
    elif not isinstance(value, expected):
        fail()


def validate(data: Any, source: str = "policy") -> Policy:
    """A Policy from parsed YAML/JSON; PolicyError naming the offending key otherwise."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise PolicyError(f"{source}: a policy is a mapping of sections (interface, size, ...), got {kind}")
    _check(data, SCHEMA, "", source)
    version = data.get("version", 1)
    if version != 1:
        raise PolicyError(f"{source}: version: {version} is not supported (this modeltool reads version 1)")
    for name in ("inputs", "outputs"):
        for i, t in enumerate(data.get("interface", {}).get(name, []) or []):
            if "name" not in t:
                raise PolicyError(f"{source}: interface.{name}[{i}]: a tensor needs a name")
    opset = data.get("onnx", {}).get("opset", {})
    if "min" in opset and "max" in opset and opset["min"] > opset["max"]:
        raise PolicyError(f"{source}: onnx.opset: min {opset['min']} is above max {opset['max']}")
    return Policy(data, None)


def load_policy(path: str) -> Policy:
    """Read and validate a policy file (YAML or JSON, safe loader)."""
    import yaml

    if not os.path.isfile(path):
        raise PolicyError(f"{path}: no such policy file")
    if os.path.getsize(path) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: {os.path.getsize(path)} bytes is too large for a policy file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"{path}: not valid YAML ({first})") from exc
    policy = validate(data, path)
    policy.path = path
    return policy
