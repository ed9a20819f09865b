"""The report payload (the contract between the commands and the page), built from the IR alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import modeltool
from modeltool.ops.diff import diff_models
from modeltool.report.graph import scope_groups
from modeltool.report.payload import check_payload, from_diff, from_model, from_verification, verification_nodes
from tests.conftest import FIXTURES

NODE_KEYS = {"id", "label", "type", "parent", "group", "shape", "params", "status", "metrics", "histogram", "details"}


def _nodes(payload: dict) -> dict[str, dict]:
    return {n["id"]: n for n in payload["graphs"][0]["nodes"]}


def test_nested_models_are_groups_with_edges_into_their_layers() -> None:
    payload = from_model(modeltool.load(FIXTURES / "keras3/nested.keras"))
    check_payload(payload)
    assert payload["kind"] == "inspect" and payload["title"].startswith("nested.keras")
    assert any("115 parameters" in line for line in payload["summary"])
    nodes = _nodes(payload)
    assert all(set(n) == NODE_KEYS for n in nodes.values())
    assert {k for k, n in nodes.items() if n["group"]} == {"inner_block", "encoder"}
    assert nodes["inner_block/inner_dense_1"]["parent"] == "inner_block"
    assert nodes["encoder/enc_dense"]["parent"] == "encoder"
    assert nodes["head"]["parent"] is None
    dense = nodes["inner_block/inner_dense_1"]
    assert dense["shape"] == "(None, 8)" and dense["params"] == 56
    assert dense["metrics"] == {"params": 56, "trainable params": 56, "output shape": "(None, 8)"}
    assert dense["details"]["units"] == "8"
    # edges run layer to layer: into the nested Sequential's first layer (it has no input layer of
    # its own), out of its last one, into the nested Functional's input layer
    edges = {tuple(e) for e in payload["graphs"][0]["edges"]}
    assert edges == {("x", "inner_block/inner_dense_1"), ("inner_block/inner_dense_1", "inner_block/inner_dense_2"),
                     ("inner_block/inner_dense_2", "encoder/enc_in"), ("encoder/enc_in", "encoder/enc_dense"),
                     ("encoder/enc_dense", "head")}  # fmt: skip


def test_op_graphs_are_grouped_by_name_scope() -> None:
    payload = from_model(modeltool.load(FIXTURES / "graphs/conv_bn.onnx"))
    check_payload(payload)
    nodes = _nodes(payload)
    groups = {k: n for k, n in nodes.items() if n["group"]}
    assert "conv_bn_1/" in groups and groups["conv_bn_1/"]["parent"] is None
    assert groups["conv_bn_1/up_1/Repeat/"]["parent"] == "conv_bn_1/up_1/"
    # a scope holding one op is no group: the op sits in the enclosing scope, named relative to it
    relu = nodes["conv_bn_1/relu1_1/Relu"]
    assert relu["parent"] == "conv_bn_1/" and relu["label"] == "relu1_1/Relu" and not relu["group"]
    assert nodes["conv_bn_1/logits_1/Softmax"]["parent"] == "conv_bn_1/logits_1/"
    # the graph input is a node of its own, with an edge into the first op
    assert nodes["input:pixels"]["shape"] == "(None, 16, 16, 3)"
    edges = {tuple(e) for e in payload["graphs"][0]["edges"]}
    assert ("input:pixels", "conv_bn_1/bn1_1/batchnorm/mul_1__13") in edges
    assert ("conv_bn_1/logits_1/MatMul", "conv_bn_1/logits_1/Softmax") in edges
    assert groups["conv_bn_1/"]["metrics"] == {"ops": 34, "params": 1233}
    assert sum(n["params"] for n in nodes.values() if not n["group"]) == 1233


def test_scope_chains_are_merged() -> None:
    names = ["rnn/rnn/cell/a", "rnn/rnn/cell/b", "rnn/x", "rnn/y", "top/op", "single/op2"]
    parents = scope_groups(names)
    assert parents == {"rnn": None, "rnn/rnn/cell": "rnn"}  # rnn/rnn holds only rnn/rnn/cell: merged


def test_diff_marks_added_removed_and_changed_layers_in_b(diff_pair) -> None:
    a, b = (modeltool.load(p) for p in diff_pair)
    payload = from_diff(diff_models(a, b), a, b)
    check_payload(payload)
    assert payload["kind"] == "diff" and len(payload["graphs"]) == 1
    nodes = _nodes(payload)
    assert {k: n["status"] for k, n in nodes.items()} == {
        "hidden": "changed", "dropout": "removed", "extra": "added", "predictions": None}  # fmt: skip
    assert nodes["hidden"]["details"]["changed units"] == "32 -> 48"
    edges = {tuple(e) for e in payload["graphs"][0]["edges"]}
    assert edges == {("hidden", "extra"), ("extra", "predictions"),  # B's
                     ("hidden", "dropout"), ("dropout", "predictions")}  # A's, for the layer B lost  # fmt: skip
    assert any(line.startswith("different: 3 layer change(s)") for line in payload["summary"])


def test_diff_across_levels_draws_both_graphs() -> None:
    a = modeltool.load(FIXTURES / "keras3/conv_bn.keras")
    b = modeltool.load(FIXTURES / "graphs/conv_bn.onnx")
    payload = from_diff(diff_models(a, b), a, b)
    check_payload(payload)
    assert [g["id"] for g in payload["graphs"]] == ["a", "b"]
    assert any("architecture not compared" in line for line in payload["summary"])


@dataclass
class _Record:  # what the localization hands over: an object with to_dict()
    name: str
    status: str
    max_abs: float | None = None
    cosine: float | None = None
    snr_db: float | None = None
    passed: bool | None = None
    histogram: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def test_verification_colours_nodes_by_their_error() -> None:
    model = modeltool.load(FIXTURES / "keras3/nested.keras")
    hist = {"edges": [-0.5, 0.0, 0.5], "counts": [3, 7]}
    records = [
        {"name": "x", "status": "ok", "max_abs": 0.0, "cosine": 1.0, "snr_db": 200.0, "passed": True},
        _Record("inner_dense_1", "first", 0.5, 0.91, 12.5, False, hist),  # matched by its label
        {"name": "enc_dense:0", "max_abs": 0.7, "passed": False},  # a tensor name; no status: from passed
        {"name": "encoder/enc_in", "status": "unmatched"},
        {"name": "not_in_the_graph", "status": "ok", "passed": True},
    ]
    payload = from_verification(model, records, summary=["verify: FAILED"])
    check_payload(payload)
    nodes = _nodes(payload)
    assert nodes["x"]["status"] == "ok" and nodes["x"]["metrics"]["snr_db"] == 200.0
    first = nodes["inner_block/inner_dense_1"]
    assert first["status"] == "first" and first["histogram"] == hist
    assert first["metrics"]["max_abs"] == 0.5 and first["metrics"]["passed"] == "no"
    assert first["metrics"]["params"] == 56  # inspect's figures stay
    assert nodes["encoder/enc_dense"]["status"] == "diverged"
    assert nodes["encoder/enc_in"]["status"] == "unmatched"
    assert nodes["head"]["status"] is None
    assert payload["summary"][0] == "verify: FAILED"
    assert any("not_in_the_graph" in line for line in payload["summary"])


def test_verification_nodes_leaves_the_graph_it_was_given_alone() -> None:
    graph = from_model(modeltool.load(FIXTURES / "keras3/nested.keras"))["graphs"][0]
    marked = verification_nodes(graph, [{"name": "head", "passed": False, "max_abs": 1.0}], first="head")
    assert {n["id"]: n["status"] for n in marked["nodes"]}["head"] == "first"
    assert all(n["status"] is None and "max_abs" not in n["metrics"] for n in graph["nodes"])


@pytest.mark.parametrize("breakage,message", [
    (lambda p: p.update(kind="report"), "kind"),
    (lambda p: p["graphs"][0]["nodes"][0].update(status="bad"), "status"),
    (lambda p: p["graphs"][0]["nodes"][0].update(parent="head"), "is not a group"),
    (lambda p: p["graphs"][0]["edges"].append(["x", "nowhere"]), "unknown nodes"),
    (lambda p: p["graphs"][0]["nodes"][0].pop("metrics"), "lacks metrics"),
    (lambda p: p["graphs"][0]["nodes"][0].update(histogram={"edges": [0, 1], "counts": [1, 2]}), "histogram"),
])  # fmt: skip
def test_check_payload_names_what_breaks_the_contract(breakage, message: str) -> None:
    payload = from_model(modeltool.load(FIXTURES / "keras3/nested.keras"))
    breakage(payload)
    with pytest.raises(ValueError, match=message):
        check_payload(payload)
