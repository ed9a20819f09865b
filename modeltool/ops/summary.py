"""Summaries of a loaded model: the `model.summary()`-like text, the JSON form, one layer in full.

Reports are data first (`model_to_dict`, `layer_detail`); the text renderers only format them.
Lambda bytecode is described (size, readable strings) and never unmarshalled.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from modeltool.formats import Format
from modeltool.ir import Model, Node, Weight, display_config, format_shape, shape_to_list
from modeltool.sizes import format_size

BYTECODE_STRINGS = re.compile(rb"[\x20-\x7e]{4,}")


# ---------------------------------------------------------------- data


def model_to_dict(model: Model, *, weights: bool = False, stats: bool = False) -> dict[str, Any]:
    """The `inspect --json` object."""
    out: dict[str, Any] = {
        "path": model.path,
        "format": model.format,
        "format_description": model.metadata.format_description,
        "file_size": model.metadata.file_size,
        "writer": model.metadata.writer,
        "training": _training_public(model.metadata.training),
        "inputs": [t.to_dict() for t in model.inputs],
        "outputs": [t.to_dict() for t in model.outputs],
        "params": params_dict(model),
        "graph_level": model.graph.level if model.graph else None,
        "layers": [n.to_dict() for n in model.layers],
        "signatures": [s.to_dict() for s in model.signatures],
        "flagged": flagged_layers(model),
        "warnings": list(model.warnings),
    }
    if model.metadata.extra:
        out["extra"] = model.metadata.extra
    if weights or stats:
        out["weights"] = [weight_dict(w, stats, guessed=trainable_guessed(model)) for w in model.weights]
    return out


#: weights-only formats: without an architecture, which weights are trainable is read off their names
WEIGHTS_ONLY = (Format.KERAS_H5_WEIGHTS, Format.KERAS3_WEIGHTS)


def trainable_guessed(model: Model) -> bool:
    """True when the trainable/non-trainable split is a guess from weight names: a weights file
    without architecture cannot say that a layer was frozen (`trainable: false`)."""
    return model.graph is None and bool(model.weights) and model.format in WEIGHTS_ONLY


def params_dict(model: Model) -> dict[str, Any]:
    """`params` of `inspect --json`: a guessed split is `null`, with the guess beside it."""
    out = model.params.to_dict()
    if trainable_guessed(model):
        out["trainable_guess"], out["non_trainable_guess"] = out["trainable"], out["non_trainable"]
        out["trainable"] = out["non_trainable"] = None
    return out


def weight_dict(w: Weight, stats: bool = False, *, guessed: bool = False) -> dict[str, Any]:
    d = w.to_dict()
    if guessed:  # see trainable_guessed
        d["trainable"], d["trainable_guess"] = None, w.trainable
    if stats:
        d["stats"] = w.stats().to_dict()
    return d


def flagged_layers(model: Model) -> list[dict[str, Any]]:
    """Lambda, custom and unknown layers (any depth), Flex/custom ops: what needs attention."""
    out = []
    if model.graph is None:
        return out
    for path, node in model.graph.walk():
        if node.flags:
            item: dict[str, Any] = {"layer": path, "class_name": node.op, "flags": list(node.flags)}
            if "lambda" in node.flags:
                item["lambda"] = lambda_info(node.config)
            out.append(item)
    return out


def lambda_info(config: dict[str, Any]) -> dict[str, Any]:
    """What a Lambda holds, without running or unmarshalling it."""
    fn = config.get("function")
    info: dict[str, Any] = {"function_type": config.get("function_type")}
    raw: bytes | None = None
    if isinstance(fn, list) and fn and isinstance(fn[0], str):
        if config.get("function_type") == "function":
            info["function_name"] = fn[0]
        else:
            raw = fn[0].encode("latin-1", "replace")
            info["function_type"] = info["function_type"] or "lambda"
    elif isinstance(fn, dict):
        inner = fn.get("config")
        code = inner.get("code") if isinstance(inner, dict) else None  # a str names a registered function
        info["function_type"] = fn.get("class_name")
        if isinstance(code, str):
            try:
                raw = base64.b64decode(code)
            except ValueError:
                raw = code.encode()
        elif isinstance(fn.get("config"), str):
            info["function_name"] = fn.get("config")
    elif isinstance(fn, str):
        try:
            raw = base64.b64decode(fn, validate=True)
        except ValueError:
            info["function_name"] = fn
    if raw is not None:
        info["bytecode_bytes"] = len(raw)
        info["strings"] = [s.decode() for s in BYTECODE_STRINGS.findall(raw)][:12]
        info["executed"] = False
    return info


def _training_public(training: dict[str, Any] | None) -> dict[str, Any] | None:
    if not training:
        return None
    return {k: v for k, v in training.items() if k != "raw"}


def layer_detail(model: Model, key: str | int, *, stats: bool = False) -> dict[str, Any]:
    """One layer in full: config, inbound/outbound, shapes of every call, weights (+ stats)."""
    node = model.get_layer(key)
    path = next((p for p, n in model.graph.walk() if n is node), node.name) if model.graph else node.name
    outbound = []
    if model.graph is not None:
        for p, other in model.graph.walk():
            for call in other.inbound:
                if any(_producer(t) == node.name for t in call) and p not in outbound:
                    outbound.append(p)
    mine = [w for w in model.weights if w.layer == path or (w.layer or "").startswith(path + "/")]
    detail: dict[str, Any] = {
        "name": node.name,
        "path": path,
        "class_name": node.op,
        "flags": list(node.flags),
        "config": display_config(node.config),
        "inbound": [list(c) for c in node.inbound],
        "outbound": outbound,
        "output_shapes": [[shape_to_list(s) for s in call] for call in node.call_shapes] or
                         [[shape_to_list(s) for s in node.output_shapes]],
        "params": node.params,
        "trainable_params": node.trainable_params,
        "weights": [weight_dict(w, stats) for w in mine],
    }  # fmt: skip
    if "lambda" in node.flags:
        detail["lambda"] = lambda_info(node.config)
    if node.subgraph is not None:
        detail["layers"] = [n.name for n in node.subgraph.nodes]
    if node.attrs.get("quantization"):
        detail["quantization"] = node.attrs["quantization"]
    return detail


def _producer(tensor: str) -> str:
    return tensor.split("@", 1)[0].split(":", 1)[0]


# ---------------------------------------------------------------- text


def _count(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def render_summary(model: Model, *, width: int = 100) -> str:
    lines = _header(model)
    if model.layers:
        lines.append("")
        lines.extend(_table(model, width))
    p = model.params
    param_bytes = sum(w.size * _itemsize(w.dtype) for w in model.weights) if model.weights else (
        None if p.total is None else p.total * 4)  # fmt: skip
    src = "counted from stored weights" if p.source == "weights" else "computed from layer configs"
    size = f" ({format_size(param_bytes)})" if param_bytes is not None else ""
    lines.append(f" Total params: {_count(p.total)}{size}  [{src}]")
    if trainable_guessed(model):
        guess = f"by weight names {_count(p.trainable)}"
        lines.append(f" Trainable params: unknown (weights file without architecture; {guess})")
        lines.append(f" Non-trainable params: unknown (by weight names {_count(p.non_trainable)})")
    else:
        lines.append(f" Trainable params: {_count(p.trainable)}")
        lines.append(f" Non-trainable params: {_count(p.non_trainable)}")
    if p.total is None:
        unknown = [n.name for n in model.layers if n.params is None]
        lines.append(f" (unknown for: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''})")
    for w in model.warnings:
        lines.append(f" Warning: {w}")
    return "\n".join(lines)


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 4


def _header(model: Model) -> list[str]:
    meta = model.metadata
    lines = [f'Model: "{model.path}"', f" Format: {meta.format_description} [{meta.format}]"]
    writer = ", ".join(f"{k} {v}" for k, v in meta.writer.items() if v)
    if writer:
        lines.append(f" Written by: {writer}")
    lines.append(f" File size: {format_size(meta.file_size)}")
    for label, specs in (("Inputs", model.inputs), ("Outputs", model.outputs)):
        if specs:
            lines.append(f" {label}:")
            for t in specs:
                meaning = (meta.extra.get("input_meanings") or {}).get(t.name) if label == "Inputs" else None
                said = f"  ({meaning})" if meaning else ""
                lines.append(f"   {t.name}  {format_shape(t.shape)}  {t.dtype or '?'}{said}")
    for sig in model.signatures:
        ins = ", ".join(f"{t.name}{format_shape(t.shape)}" for t in sig.inputs)
        outs = ", ".join(f"{t.name}{format_shape(t.shape)}" for t in sig.outputs)
        method = f"  [{sig.method}]" if sig.method else ""
        lines.append(f" Signature {sig.name!r}: ({ins}) -> ({outs}){method}")
    tr = meta.training
    if tr:
        opt = tr.get("optimizer") or "?"
        lr = f" (learning rate {tr['learning_rate']:.6g})" if isinstance(tr.get("learning_rate"), float) else ""
        lines.append(f" Training: optimizer {opt}{lr}, loss {_short(tr.get('loss'))}")
        if tr.get("metrics"):
            lines.append(f"           metrics {_short(tr.get('metrics'))}")
    for item in flagged_layers(model):
        if "lambda" in item["flags"]:
            info = item.get("lambda", {})
            size = f"{info['bytecode_bytes']} bytes of " if "bytecode_bytes" in info else ""
            lines.append(f" ! Lambda layer {item['layer']}: {size}Python code, shown but not executed")
        elif "library" in item["flags"]:
            lines.append(f" ! Library layer {item['layer']} ({item['class_name']}): a class of the installed model "
                         "library, trusted like Keras (docs/security.md)")
        elif "custom" in item["flags"]:
            lines.append(f" ! Custom layer {item['layer']} ({item['class_name']}): not a Keras built-in")
        elif "flex" in item["flags"]:
            lines.append(f" ! Flex (Select TF) op {item['class_name']} at {item['layer']}")
    extra = meta.extra
    lines.extend(_tf_lines(extra))
    if extra.get("flex_ops"):
        lines.append(f" TFLite Flex ops: {', '.join(extra['flex_ops'])} (need the Select TF ops runtime)")
    if extra.get("opsets"):
        lines.append(" Opsets: " + ", ".join(f"{k} {v}" for k, v in extra["opsets"].items()))
    return lines


def _tf_lines(extra: dict[str, Any]) -> list[str]:
    """What SavedModels, checkpoints and GraphDefs add to the header."""
    lines = []
    labels = [("origin", "Origin"), ("checkpoint_kind", "Checkpoint"), ("architecture", "Architecture")]
    for key, label in labels:
        if extra.get(key):
            lines.append(f" {label}: {extra[key]}")
    if extra.get("tags"):
        lines.append(" Tags: " + "; ".join(",".join(t) for t in extra["tags"]))
    if extra.get("assets"):
        lines.append(f" Assets: {', '.join(extra['assets'][:8])}{' ...' if len(extra['assets']) > 8 else ''}")
    if extra.get("training_state_variables"):
        lines.append(f" Training state: {extra['training_state_variables']} optimizer/metric variables (not counted)")
    hist = extra.get("op_histogram")
    if hist:
        top = ", ".join(f"{op} {n}" for op, n in list(hist.items())[:10])
        lines.append(f" Ops ({sum(hist.values())} nodes, {len(hist)} types): {top}{' ...' if len(hist) > 10 else ''}")
    return lines


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(model: Model, width: int) -> list[str]:
    op_level = model.graph is not None and model.graph.level == "op"
    headers = ("Op (type)" if op_level else "Layer (type)", "Output Shape", "Param #", "Connected to")
    rows = []
    for node in model.layers:
        _rows(node, rows, indent="")
    cols = [max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i]) for i in range(4)]
    cols[0] = min(cols[0], 48)
    cols[1] = min(cols[1], 28)
    cols[3] = max(min(cols[3], width - sum(cols[:3]) - 6), 12)
    total = sum(cols) + 6
    rule = "-" * total

    def fmt(r: tuple) -> str:
        cells = [_clip(r[i], cols[i]) for i in range(4)]
        return f"{cells[0]:<{cols[0]}}  {cells[1]:<{cols[1]}}  {cells[2]:>{cols[2]}}  {cells[3]}"

    out = [rule, fmt(headers), "=" * total]
    out += [fmt(r) for r in rows]
    out.append(rule)
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _rows(node: Node, rows: list, indent: str) -> None:
    shape = node.output_shape
    if isinstance(shape, list):
        shape_text = ", ".join(format_shape(s) for s in shape)
    else:
        shape_text = format_shape(shape)
    if len(node.call_shapes) > 1 and len({str(c) for c in node.call_shapes}) > 1:
        shape_text = "multiple"
    flags = f" [{','.join(node.flags)}]" if node.flags else ""
    connected = "; ".join(", ".join(call) for call in node.inbound)
    params = "?" if node.params is None else f"{node.params:,}"
    rows.append((f"{indent}{node.name} ({node.op}){flags}", shape_text, params, connected))
    if node.subgraph is not None:
        for inner in node.subgraph.nodes:
            _rows(inner, rows, indent + "  ")


def render_layer(detail: dict[str, Any]) -> str:
    """Text form of `layer_detail`."""
    import json

    lines = [f"Layer {detail['path']} ({detail['class_name']})"]
    if detail["flags"]:
        lines.append(f"  flags: {', '.join(detail['flags'])}")
    if "lambda" in detail:
        lines.append(f"  lambda: {json.dumps(detail['lambda'])}")
    lines += _per_call("inbound", [", ".join(call) or "none" for call in detail["inbound"]])
    lines.append(f"  outbound: {', '.join(detail['outbound']) or 'none'}")
    shapes = [", ".join(format_shape(None if s is None else tuple(s)) for s in call) or "?"
              for call in detail["output_shapes"]]  # fmt: skip
    several = len(shapes) > 1 or any(len(call) > 1 for call in detail["output_shapes"])
    lines += _per_call("output shapes" if several else "output shape", shapes)
    p, tp = detail["params"], detail["trainable_params"]
    lines.append(f"  params: {_count(p)} (trainable {_count(tp)})")
    if detail.get("layers"):
        lines.append(f"  layers: {', '.join(detail['layers'])}")
    if detail["weights"]:
        lines.append("  weights:")
        for w in detail["weights"]:
            line = f"    {w['name']}  {tuple(w['shape'])}  {w['dtype']}  role={w['role']}"
            line += "" if w["trainable"] else "  (non-trainable)"
            if "stats" in w:
                s = w["stats"]
                line += _stats_text(s)
            lines.append(line)
    lines.append("  config:")
    lines += ["    " + ln for ln in json.dumps(detail["config"], indent=2, default=str).splitlines()]
    return "\n".join(lines)


def _per_call(label: str, calls: list[str]) -> list[str]:
    """`label: text` for a layer called once, one numbered line per call for a shared layer
    (call k is what the summary's "Connected to" column names `layer@k`)."""
    if len(calls) <= 1:
        return [f"  {label}: {calls[0] if calls else 'none'}"]
    return [f"  {label} ({len(calls)} calls):"] + [f"    call {i}: {text}" for i, text in enumerate(calls)]


def _stats_text(s: dict[str, Any]) -> str:
    if s["min"] is None:
        return f"  no finite values (nan={s['nan']}, inf={s['inf']})"
    text = f"  min={s['min']:.4g} max={s['max']:.4g} mean={s['mean']:.4g} std={s['std']:.4g}"
    if s["nan"] or s["inf"]:
        text += f"  NaN={s['nan']} Inf={s['inf']}"
    return text


def render_weights(model: Model, stats: bool) -> str:
    lines = ["", "Weights:"]
    guessed = trainable_guessed(model)
    for w in model.weights:
        line = f"  {w.name}  {tuple(w.shape)}  {w.dtype}"
        if not w.trainable:
            line += "  (non-trainable, by its name)" if guessed else "  (non-trainable)"
        if stats:
            line += _stats_text(w.stats().to_dict())
        lines.append(line)
    return "\n".join(lines)
