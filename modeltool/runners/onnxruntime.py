"""ONNX models in onnxruntime, on CPU or CUDA (`device`: cpu, cuda, auto)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modeltool.deps import require
from modeltool.errors import LoadError, MissingDependencyError
from modeltool.ir import TensorSpec
from modeltool.runners.base import Feed, Runner, dims

ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool", "tensor(int16)": "int16", "tensor(string)": "object",
}  # fmt: skip


def providers_for(device: str) -> list[str]:
    """The execution providers to ask for; `cuda` without a CUDA-enabled onnxruntime is an error."""
    ort = require("onnxruntime", "running ONNX models")
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda":
        if not has_cuda:
            raise MissingDependencyError(
                "--device cuda: this onnxruntime has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); run: pip install 'modeltool-tf[gpu]'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return (["CUDAExecutionProvider"] if has_cuda else []) + ["CPUExecutionProvider"]


#: from this many bytes of weights, a session does not prepack them (a second copy while it starts)
NO_PREPACK_BYTES = 1 << 30


def session_options(ort: Any, path: str) -> Any:
    """Quiet session options; for a model of `NO_PREPACK_BYTES` or more, weight prepacking off: with
    it, onnxruntime holds the weights twice while the session starts (the model's copy and the packed
    one), without it the external data (page-aligned, as modeltool writes it) is mapped from the file
    and read as used. A model that large is here to be verified or checked, not timed for latency."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if model_bytes(path) >= NO_PREPACK_BYTES:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return options


def model_bytes(path: str) -> int:
    """The model file's size with the external data modeltool writes beside it (`X.onnx.data`, or the
    folder `X.onnx.data.d/`)."""
    total = os.path.getsize(path) if os.path.isfile(path) else 0
    data, folder = f"{path}.data", f"{path}.data.d"
    if os.path.isfile(data):
        total += os.path.getsize(data)
    if os.path.isdir(folder):
        total += sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())
    return total


class OnnxRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu") -> None:
        super().__init__(path)
        self.path, self.device = path, device
        self.session = None

    def _activate(self) -> None:
        ort = require("onnxruntime", "running ONNX models")
        options = session_options(ort, self.path)
        try:
            self.session = ort.InferenceSession(self.path, options, providers=providers_for(self.device))
        except MissingDependencyError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise LoadError(
                f"{self.path}: onnxruntime cannot load the model ({' '.join(str(exc).split())[:300]})"
            ) from exc
        self.provider = self.session.get_providers()[0]
        if self.device == "cuda" and self.provider != "CUDAExecutionProvider":
            raise MissingDependencyError(f"--device cuda: onnxruntime fell back to {self.provider} (CUDA unusable)")

    def _deactivate(self) -> None:
        self.session = None

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, dims(i.shape), ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()]

    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        dtypes = {s.name: s.dtype for s in self.input_specs()}
        cast = {k: np.asarray(v).astype(dtypes.get(k, v.dtype), copy=False) for k, v in feed.items()}
        values = self.session.run(None, cast)
        return dict(zip(self.output_names(), values))

    def _intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """Every node output made a graph output (types from onnx's shape inference), in node order."""
        onnx = require("onnx", "exposing intermediate tensors")
        ort = require("onnxruntime")
        model = onnx.load(self.path)
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - without inference, only typed values are exposed
            pass
        typed = {v.name: v for v in [*model.graph.value_info, *model.graph.output]}
        present = {o.name for o in model.graph.output}
        names = []
        for node in model.graph.node:
            for out in node.output:
                if out and out in typed:
                    names.append(out)
                    if out not in present:
                        model.graph.output.append(typed[out])
                        present.add(out)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
        session = ort.InferenceSession(model.SerializeToString(), options, providers=providers_for(self.device))
        dtypes = {s.name: s.dtype for s in self.input_specs()}
        cast = {k: np.asarray(v).astype(dtypes.get(k, v.dtype), copy=False) for k, v in feed.items()}
        values = session.run(names, cast)
        return list(zip(names, values))
