"""ONNX inspection without the `onnx` package: modeltool's own message declarations agree with onnx's
descriptors, `inspect` imports neither onnx nor TensorFlow, and what it reads from every fixture and
corpus ONNX file equals what the real `onnx` package (the independent source) reports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from modeltool.errors import LoadError, ModelToolError
from modeltool.loaders import onnx_model, onnx_proto
from tests.conftest import CORPUS, FIXTURES, ROOT

ONNX_FILES = sorted(FIXTURES.glob("**/*.onnx")) + sorted(CORPUS.glob("*/*.onnx"))
#: both ways of reading: the file parsed whole, and mapped with the weights' bytes left on disk
READS = {"whole": 1 << 40, "mapped": 0}


def _flat(fdp) -> dict:  # noqa: ANN001 - a FileDescriptorProto
    """Message name ("TypeProto.Tensor") -> DescriptorProto, nested messages included."""
    out = {}

    def walk(msg, prefix: str) -> None:  # noqa: ANN001
        out[prefix + msg.name] = msg
        for inner in msg.nested_type:
            walk(inner, f"{prefix}{msg.name}.")

    for msg in fdp.message_type:
        walk(msg, "")
    return out


def _onnx_file_descriptor():  # noqa: ANN202
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto()
    onnx.ModelProto.DESCRIPTOR.file.CopyToProto(fdp)
    return fdp


def test_declarations_agree_with_onnx_descriptors() -> None:
    theirs, ours = _flat(_onnx_file_descriptor()), _flat(onnx_proto._file_descriptor())
    assert _onnx_file_descriptor().package == onnx_proto.PACKAGE
    checked = 0
    for name, msg in ours.items():
        if name not in theirs:  # a message of a newer ONNX than the installed one
            continue
        their_fields = {f.name: f for f in theirs[name].field}
        their_oneofs = [o.name for o in theirs[name].oneof_decl]
        our_oneofs = [o.name for o in msg.oneof_decl]
        for field in msg.field:
            other = their_fields.get(field.name)
            if other is None:
                continue  # a field of a newer ONNX
            where = f"{name}.{field.name}"
            assert (field.number, field.type, field.label, field.type_name) == (
                other.number, other.type, other.label, other.type_name), where  # fmt: skip
            ours_in = our_oneofs[field.oneof_index] if field.HasField("oneof_index") else None
            theirs_in = their_oneofs[other.oneof_index] if other.HasField("oneof_index") else None
            assert ours_in == theirs_in, where
            assert field.options.packed == other.options.packed, where
            checked += 1
    assert checked > 130
    # every field of every message a ModelProto can hold is declared: nothing onnx.load reads is skipped
    reachable, todo = set(), ["ModelProto"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        for field in theirs[name].field:
            if field.type == field.TYPE_MESSAGE:
                todo.append(field.type_name.removeprefix(".onnx."))
    for name in reachable:
        missing = {f.name for f in theirs[name].field} - {f.name for f in ours.get(name, theirs[name]).field}
        assert name in ours and not missing, f"onnx declares {name} {sorted(missing)}: add them to onnx_proto.SCHEMA"
    for enum_name, values in onnx_proto.ENUMS.items():
        outer, _, inner = enum_name.rpartition(".")
        enum = next(e for e in theirs[outer].enum_type if e.name == inner)
        assert {v.name: v.number for v in enum.value}.items() >= values.items(), enum_name


def test_dtype_names_agree_with_onnx() -> None:
    known = [v for v in onnx.TensorProto.DataType.values() if v != onnx.TensorProto.UNDEFINED]
    for data_type in known:
        assert onnx_proto.dtype_name(data_type) == str(helper.tensor_dtype_to_np_dtype(data_type)), data_type
    assert onnx_proto.dtype_name(0) == "undefined" and onnx_proto.dtype_name(999) == "dtype999"


def test_inspect_imports_neither_onnx_nor_tensorflow() -> None:
    script = (
        "import contextlib, io, json, sys\n"
        "from modeltool.cli import main\n"
        "codes = []\n"
        "for path in sys.argv[1:]:\n"
        "    for extra in ([], ['--json', '--weights', '--stats']):\n"
        "        with contextlib.redirect_stdout(io.StringIO()):\n"
        "            codes.append(main(['inspect', path, *extra]))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'ml_dtypes', 'tensorflow', 'keras'))\n"
        "print('REPORT' + json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *map(str, ONNX_FILES)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report["codes"] == [0] * 2 * len(ONNX_FILES)
    assert report["heavy"] == []


def _shape(type_proto) -> tuple | None:  # noqa: ANN001 - onnx's TypeProto
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in type_proto.tensor_type.shape.dim)


def _specs(infos, skip: set) -> list:  # noqa: ANN001
    return [(vi.name, _shape(vi.type), str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)))
            for vi in infos if vi.name not in skip]  # fmt: skip


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("path", ONNX_FILES, ids=[p.name for p in ONNX_FILES])
def test_ir_equals_what_onnx_reads(path: Path, read: str) -> None:
    proto = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    g = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    stated = {vi.name: _shape(vi.type) for vi in [*g.value_info, *g.output, *g.input]}
    everything = {vi.name: _shape(vi.type) for vi in [*inferred.value_info, *inferred.output, *inferred.input]}
    plain = onnx_model.load(str(path), lazy_above=READS[read])
    full = onnx_model.load(str(path), lazy_above=READS[read], infer_shapes=True)
    for model in (plain, full):
        assert [(t.name, t.shape, t.dtype) for t in model.inputs] == _specs(inferred.input, set(inits))
        assert [(t.name, t.shape, t.dtype) for t in model.outputs] == _specs(inferred.output, set())
        assert Counter(n.op for n in model.layers) == Counter(n.op_type for n in g.node)
        assert [n.attrs["outputs"] for n in model.layers] == [list(n.output) for n in g.node]
        assert model.params.total == sum(a.size for a in inits.values())
        assert [(w.name, w.shape, w.dtype) for w in model.weights] == [
            (k, a.shape, str(a.dtype)) for k, a in inits.items()]  # fmt: skip
        for w in model.weights:
            got = w.value()
            assert got.dtype == inits[w.name].dtype
            np.testing.assert_array_equal(got, inits[w.name])
        assert model.metadata.writer["producer"] == f"{proto.producer_name} {proto.producer_version}".strip()
        assert model.metadata.writer["ir_version"] == str(proto.ir_version)
        assert model.metadata.extra["opsets"] == {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    # shapes: what the file states, or with infer_shapes=True what onnx's shape inference adds
    assert [n.output_shapes for n in plain.layers] == [[stated.get(o) for o in n.output] for n in g.node]
    assert [n.output_shapes for n in full.layers] == [[everything.get(o) for o in n.output] for n in g.node]


def test_mapped_read_leaves_weight_bytes_on_disk() -> None:
    path = FIXTURES / "graphs/conv_bn.onnx"
    data = path.read_bytes()
    proto, spans, size = onnx_proto.read_model(str(path), lazy_above=0)
    expected = onnx.load(str(path)).graph.initializer
    assert size == len(data) and len(spans) == len(expected)
    for tensor, span, want in zip(proto.graph.initializer, spans, expected):
        assert not tensor.HasField("raw_data")
        assert data[span[0] : span[0] + span[1]] == want.raw_data


def test_many_small_fields_are_parsed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan gives up where protobuf's C parser is faster (a graph of many small pieces)."""
    monkeypatch.setattr(onnx_proto, "FIELDS_FREE", 10)
    proto, spans, _ = onnx_proto.read_model(str(FIXTURES / "graphs/conv_bn.onnx"), lazy_above=0)
    assert spans == [] and all(t.HasField("raw_data") for t in proto.graph.initializer)


#: every numpy-native type, and three ml_dtypes ones (bfloat16, float8e4m3fn, int4) that onnx decodes
DECODE_TYPES = (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 22)
DECODE_CASES = [(dt, raw) for dt in DECODE_TYPES for raw in (False, True)]
DECODE_IDS = [f"{dt}-{'raw' if raw else 'typed'}" for dt, raw in DECODE_CASES]


@pytest.mark.parametrize("data_type,raw", DECODE_CASES, ids=DECODE_IDS)
def test_values_decode_as_numpy_helper_does(data_type: int, raw: bool) -> None:
    np_type = helper.tensor_dtype_to_np_dtype(data_type)
    base = np.array([[0, 1, 2], [3, 1, 0]])
    if raw:  # the bytes onnx writes for these values
        theirs = numpy_helper.from_array(base.astype(np_type), "t")
    elif data_type in (14, 15):
        theirs = helper.make_tensor("t", data_type, (2, 3), (base + 1j * base).flatten().tolist())
    else:
        theirs = helper.make_tensor("t", data_type, (2, 3), base.astype(np_type).flatten().tolist())
    ours = onnx_proto.message_class("TensorProto").FromString(theirs.SerializeToString())
    got, want = onnx_model.tensor_values(ours, "."), numpy_helper.to_array(theirs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_string_tensor_decodes() -> None:
    theirs = helper.make_tensor("s", onnx.TensorProto.STRING, (2,), [b"a", "é".encode()])
    ours = onnx_proto.message_class("TensorProto").FromString(theirs.SerializeToString())
    assert list(onnx_model.tensor_values(ours, ".")) == list(numpy_helper.to_array(theirs))


def _saved(tmp_path: Path, name: str = "m.onnx", external: bool = False) -> tuple[Path, dict[str, np.ndarray]]:
    model = onnx.load(str(FIXTURES / "graphs/conv_bn.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    path = tmp_path / name
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=name + ".data", size_threshold=0)  # fmt: skip
    return path, inits


@pytest.mark.parametrize("read", sorted(READS))
def test_external_data_is_read_from_the_models_folder(tmp_path: Path, read: str) -> None:
    path, inits = _saved(tmp_path, external=True)
    model = onnx_model.load(str(path), lazy_above=READS[read])
    for w in model.weights:
        np.testing.assert_array_equal(w.value(), inits[w.name])


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "missing.data", "link.data"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link.data").symlink_to(tmp_path / "secret.bin")
    model = onnx.load(str(FIXTURES / "graphs/conv_bn.onnx"))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    path = tmp_path / "m" / "m.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = onnx_model.load(str(path))  # inspecting the file still works: only reading the value fails
    with pytest.raises(LoadError, match="external data"):
        loaded.weights[0].value()


def test_unknown_data_type_is_shown_and_fails_only_when_read(tmp_path: Path) -> None:
    model = onnx.load(str(FIXTURES / "graphs/conv_bn.onnx"))
    model.graph.initializer[0].data_type = 99
    path = tmp_path / "future.onnx"
    path.write_bytes(model.SerializeToString())
    loaded = onnx_model.load(str(path))
    assert loaded.weights[0].dtype == "dtype99"
    with pytest.raises(LoadError, match="data type 99"):
        loaded.weights[0].value()


def _mutations(data: bytes, count: int) -> list[bytes]:
    rng = np.random.default_rng(12)
    out = []
    for _ in range(count):
        buf = bytearray(data)
        kind = rng.integers(4)
        at = int(rng.integers(len(buf)))
        if kind == 0:
            for _ in range(int(rng.integers(1, 5))):
                buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
        elif kind == 1:
            del buf[at:]
        elif kind == 2:
            del buf[at : at + int(rng.integers(1, 300))]
        else:
            buf[at:at] = rng.bytes(int(rng.integers(1, 32)))
        out.append(bytes(buf))
    return out


def _outcome(path: Path, lazy_above: int) -> object:
    try:
        model = onnx_model.load(str(path), lazy_above=lazy_above)
    except ModelToolError as exc:
        return str(exc)
    values = []
    for w in model.weights:
        try:
            values.append(w.stats().to_dict())
        except ModelToolError as exc:
            values.append(str(exc))
    return [(n.name, n.op, n.output_shapes) for n in model.layers], [(t.name, t.shape) for t in model.outputs], values


def test_mapped_read_and_whole_read_agree_on_damaged_files(tmp_path: Path) -> None:
    """The scan that leaves weight bytes on disk follows protobuf exactly, or hands the file to it whole."""
    original = (FIXTURES / "graphs/conv_bn.onnx").read_bytes()
    for i, data in enumerate(_mutations(original, 150)):
        path = tmp_path / f"m{i}.onnx"
        path.write_bytes(data)
        assert _outcome(path, READS["mapped"]) == _outcome(path, READS["whole"]), i
