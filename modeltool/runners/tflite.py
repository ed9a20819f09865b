"""TFLite models in LiteRT's interpreter (`ai-edge-litert`) or, without it, TensorFlow's.

Models with a SignatureDef are run through it, so inputs and outputs carry the names the
converter was given (modeltool writes the source model's names there)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modeltool.deps import available, require
from modeltool.errors import LoadError
from modeltool.ir import TensorSpec
from modeltool.runners.base import Feed, Runner, dims


def interpreter_class() -> tuple[Any, str]:
    """LiteRT's stock interpreter when installed (what ships on devices), else TensorFlow's."""
    if available("ai_edge_litert"):
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "LiteRT interpreter (ai-edge-litert)"
    tf = require("tensorflow", "running TFLite models (or: pip install ai-edge-litert)")
    return tf.lite.Interpreter, "TensorFlow Lite interpreter (tf.lite)"


class TFLiteRunner(Runner):
    backend = "tflite"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self.interpreter: Any = None
        self.signature: str | None = None

    def _activate(self) -> None:
        from modeltool.deps import quiet_stderr

        cls, self.provider = interpreter_class()
        try:
            with quiet_stderr():  # the interpreter's C++ "Created TensorFlow Lite XNNPACK delegate" line
                self.interpreter = cls(model_path=self.path)
                self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - the interpreter raises RuntimeError/ValueError freely
            raise LoadError(
                f"{self.path}: the TFLite interpreter cannot load it ({' '.join(str(exc).split())[:300]})"
            ) from exc
        sigs = self.interpreter.get_signature_list()
        if sigs:
            self.signature = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]

    def _deactivate(self) -> None:
        self.interpreter = None

    def _details(self) -> tuple[list[dict], list[dict], list[str], list[str]]:
        """(input details, output details, input names, output names) in the signature's order."""
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if self.signature is None:
            return ins, outs, [d["name"] for d in ins], [d["name"] for d in outs]
        sig = self.interpreter.get_signature_list()[self.signature]
        runner = self.interpreter.get_signature_runner(self.signature)
        in_d, out_d = runner.get_input_details(), runner.get_output_details()
        in_names, out_names = list(sig["inputs"]), list(sig["outputs"])
        return [in_d[n] for n in in_names], [out_d[n] for n in out_names], in_names, out_names

    def input_specs(self) -> list[TensorSpec]:
        details, _, names, _ = self._details()
        return [
            TensorSpec(n, dims(d.get("shape_signature", d["shape"])), np.dtype(d["dtype"]).name)
            for n, d in zip(names, details)
        ]

    def output_names(self) -> list[str]:
        return self._details()[3]

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        in_details, _, in_names, out_names = self._details()
        cast = {n: np.asarray(feed[n]).astype(np.dtype(d["dtype"]), copy=False) for n, d in zip(in_names, in_details)}
        if self.signature is not None:
            runner = self.interpreter.get_signature_runner(self.signature)
            out = runner(**cast)
            return {n: out[n] for n in out_names}
        for d in in_details:
            if tuple(d["shape"]) != cast[d["name"]].shape:
                self.interpreter.resize_tensor_input(d["index"], cast[d["name"]].shape)
        self.interpreter.allocate_tensors()
        for d in self.interpreter.get_input_details():
            self.interpreter.set_tensor(d["index"], cast[d["name"]])
        self.interpreter.invoke()
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self.interpreter.get_output_details()}

    def _intermediates(self, feed: Feed) -> list[tuple[str, np.ndarray]]:
        """Every op's outputs, in op order, from an interpreter that keeps all tensors; quantized
        tensors are dequantized (scale, zero point) so they compare with float ones."""
        from modeltool.deps import quiet_stderr

        cls, _ = interpreter_class()
        with quiet_stderr():
            interp = cls(model_path=self.path, experimental_preserve_all_tensors=True)
        in_details, _, in_names, _ = self._details()
        shapes = {d["index"]: np.asarray(feed[n]).shape for n, d in zip(in_names, in_details)}
        for d in interp.get_input_details():
            if d["index"] in shapes and tuple(d["shape"]) != shapes[d["index"]]:
                interp.resize_tensor_input(d["index"], shapes[d["index"]])
        interp.allocate_tensors()
        for n, d in zip(in_names, in_details):
            interp.set_tensor(d["index"], np.asarray(feed[n]).astype(np.dtype(d["dtype"]), copy=False))
        interp.invoke()
        details = {d["index"]: d for d in interp.get_tensor_details()}
        out = []
        for op in interp._get_ops_details():  # the op list: LiteRT's own debugger walks the same
            for index in op["outputs"]:
                d = details.get(index)
                if d is None:
                    continue
                try:
                    value = interp.get_tensor(index)
                except ValueError:  # a tensor the interpreter freed despite preserving
                    continue
                scale, zero = (d.get("quantization") or (0.0, 0))[:2]
                if scale and np.asarray(value).dtype.kind in "iu":
                    value = (np.asarray(value, np.float32) - zero) * scale
                out.append((d["name"], value))
        return out
