"""`--optimize`: onnxruntime's offline graph optimization at its portable (basic) level.

Chosen by measurement against onnxslim on keras.applications models (`bench/bench_onnx_deploy.py`,
table in the README): onnxruntime's basic level left fewer nodes on MobileNetV2 and ResNet50 than
onnxslim did, and it also moves the transposes before a global pooling into the reduction; latency in
onnxruntime was the same within noise for every variant (onnxruntime applies these rewrites itself when
it loads a model, so an offline pass can only help other runtimes and load time). It needs no new
dependency: onnxruntime is already what verifies the file.

Only the basic level is used: constant folding, dead-node and redundant-node elimination, and fusions
into standard ONNX ops (Conv+Add, Conv+Mul, ...), so the result still runs in any ONNX runtime.
onnxruntime's extended and layout levels write its own contrib ops (`com.microsoft` FusedConv,
`NCHWc` layouts tied to this machine's CPU), which other runtimes cannot load; its documentation says
an offline model from those levels is only for the same hardware and execution provider.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from modeltool.deps import quiet_stderr, require
from modeltool.errors import UnsupportedError


def optimize(onnx: Any, proto: Any, external: bool) -> Any:
    """`proto` after onnxruntime's basic-level graph optimization (a new ModelProto)."""
    ort = require("onnxruntime", "optimizing ONNX models (--optimize)")
    with tempfile.TemporaryDirectory(prefix="modeltool-optimize-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        save_for_onnxruntime(onnx, proto, src, external)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = dst
        if external:
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "out.data")
            options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        try:
            with quiet_stderr():
                ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise UnsupportedError(
                f"--optimize: onnxruntime cannot optimize the model ({' '.join(str(exc).split())[:300]})"
            ) from exc
        optimized = onnx.load(dst, load_external_data=True)
    _keep_metadata(proto, optimized)
    return optimized


def _keep_metadata(before: Any, after: Any) -> None:
    """onnxruntime writes its own producer and drops the model's metadata: keep the converter's."""
    after.producer_name, after.producer_version = before.producer_name, before.producer_version
    if before.doc_string:
        after.doc_string = before.doc_string
    del after.metadata_props[:]
    after.metadata_props.extend(before.metadata_props)


def save_for_onnxruntime(onnx: Any, proto: Any, path: str, external: bool) -> None:
    """`proto` written to `path` for one of onnxruntime's offline tools, which read files, not
    protos; weights beside it (`<stem>.data`) when they would pass protobuf's 2 GB limit."""
    if external:
        stem = os.path.splitext(os.path.basename(path))[0]
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=f"{stem}.data")
    else:
        onnx.save_model(proto, path)
