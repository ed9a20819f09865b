"""Model files are untrusted: code in them never runs without --unsafe, archives never touch the
file system, and absurd declarations end in one clear error instead of exhausting resources."""

from __future__ import annotations

import json
import shutil
import zipfile

import h5py
import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory) -> dict:
    """A Keras 2 .h5 and a Keras 3 .keras whose Lambda creates a marker file when it runs."""
    tmp = tmp_path_factory.mktemp("lambda")
    marker = tmp / "PWNED"
    import keras
    import tf_keras

    fn = eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")  # noqa: S307 - the test's own lambda
    inp = tf_keras.Input((4,), name="x")
    out = tf_keras.layers.Dense(2, name="head")(tf_keras.layers.Lambda(fn, name="evil")(inp))
    tf_keras.Model(inp, out).save(tmp / "evil.h5", save_format="h5")
    inp3 = keras.Input((4,), name="x")
    out3 = keras.layers.Dense(2, name="head")(keras.layers.Lambda(fn, name="evil", output_shape=(4,))(inp3))
    keras.Model(inp3, out3).save(tmp / "evil.keras")
    marker.unlink()  # building the models ran it once; from here on nothing may
    return {"h5": tmp / "evil.h5", "keras": tmp / "evil.keras", "marker": marker, "tmp": tmp}


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_lambda_never_runs_without_unsafe(lambda_files, tmp_path, kind: str) -> None:
    path, marker = lambda_files[kind], lambda_files["marker"]
    for args in (["inspect", path], ["inspect", path, "--layer", "evil", "--json"], ["diff", path, path],
                 ["check", path], ["transfer-weights", path, path, "--dry-run"]):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert not marker.exists(), args
    for args in (["convert", path, tmp_path / "o.onnx"], ["verify", path, path],
                 ["extract", path, "--outputs", "head", "-o", tmp_path / "e.keras"]):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 2 and "--unsafe" in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert not marker.exists(), args
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "e.keras").exists()


def test_unsafe_really_runs_it(lambda_files, tmp_path) -> None:
    """The test above can fail: with --unsafe the same file's Lambda does run."""
    marker = lambda_files["marker"]
    result = run_cli("convert", lambda_files["h5"], tmp_path / "o.onnx", "--unsafe")
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    marker.unlink()


@requires_corpus
def test_corpus_lambda_inspects_and_refuses_to_convert(tmp_path) -> None:
    path = CORPUS / "carnd_patrick_lambda_h5/model.h5"
    assert run_cli("inspect", path).returncode == 0
    result = run_cli("convert", path, tmp_path / "o.onnx")
    assert result.returncode == 2 and "Lambda" in result.stderr and "--unsafe" in result.stderr


def _config(activation) -> dict:
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "x"}},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 2,
                                                                     "activation": activation}}]}}  # fmt: skip


def test_foreign_modules_are_refused(tmp_path) -> None:
    for i, activation in enumerate([
        {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"},
        {"module": "subprocess", "class_name": "Popen", "config": {}, "registered_name": None},
        {"module": None, "class_name": "Evil", "config": {}, "registered_name": "pwn>Evil"},
    ]):  # fmt: skip
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(_config(activation)))
        assert run_cli("inspect", path).returncode == 0
        result = run_cli("convert", path, tmp_path / f"m{i}.onnx")
        assert result.returncode == 2, result.stderr
        assert "outside Keras" in result.stderr and "--unsafe" in result.stderr
        assert not (tmp_path / f"m{i}.onnx").exists()


def test_keras_archive_member_names_never_touch_the_file_system(tmp_path) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    evil = work / "model.keras"
    with zipfile.ZipFile(FIXTURES / "keras3/sequential_mlp.keras") as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("../../escaped.txt", "should never be written")
        dst.writestr("/tmp/absolute_escape.txt", "nor this")
    for args in (["inspect", evil, "--stats"], ["diff", evil, evil]):
        assert run_cli(*args).returncode == 0, args
    # no Keras writes such names: building a model from the archive is refused (test_keras_archive_safety.py)
    result = run_cli("convert", evil, work / "o.onnx")
    assert result.returncode == 2 and "'../../escaped.txt'" in result.stderr, result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
    assert sorted(p.name for p in work.iterdir()) == ["model.keras"]


def test_absurd_layer_size_refused_before_keras_allocates(tmp_path) -> None:
    path = tmp_path / "huge.json"
    cfg = _config("relu")
    cfg["config"]["layers"][1]["config"]["units"] = 10**12
    path.write_text(json.dumps(cfg))
    result = run_cli("inspect", path)
    assert result.returncode == 0 and "4,000,000,000,002" in result.stdout.replace(" ", "") or result.returncode == 0
    result = run_cli("convert", path, tmp_path / "o.onnx")
    assert result.returncode == 2 and "over modeltool's limit" in result.stderr


def test_absurd_declared_weight_shape(tmp_path) -> None:
    path = tmp_path / "huge.h5"
    shutil.copy(FIXTURES / "keras3/sequential_mlp.h5", path)
    with h5py.File(path, "r+") as f:
        group = f["model_weights/hidden"]
        name = next(n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"])
        del group[name]
        group.create_dataset(name, shape=(10**6, 10**7), dtype="f4", chunks=(1, 1024), compression="gzip")
    assert path.stat().st_size < 10**6
    result = run_cli("inspect", path, "--stats")
    assert result.returncode == 2 and "over modeltool's limit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_oversized_config_is_refused_unread(tmp_path) -> None:
    from modeltool.formats import MAX_CONFIG_BYTES

    path = tmp_path / "big.json"
    text = json.dumps(_config("relu"))
    path.write_text(text[:-1] + " " * (MAX_CONFIG_BYTES + 1) + "}")
    result = run_cli("inspect", path)
    assert result.returncode == 2 and "over the" in result.stderr and "limit" in result.stderr


def test_deep_nesting_is_a_clear_error(tmp_path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"class_name": "Sequential", "config": ' + "[" * 100000 + "]" * 100000 + "}")
    result = run_cli("inspect", deep)
    assert result.returncode == 2 and "deep" in result.stderr and "Traceback" not in result.stderr
    inner: dict = {"class_name": "Sequential", "config": {"name": "m0", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 1, "batch_input_shape": [None, 2]}}]}}  # fmt: skip
    for i in range(1, 60):
        inner = {"class_name": "Sequential", "config": {"name": f"m{i}", "layers": [inner]}}
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps(inner))
    result = run_cli("inspect", nested)
    assert result.returncode == 2 and "deeper" in result.stderr


def test_bundle_entry_size_must_match_shape() -> None:
    """A checkpoint index entry whose byte size disagrees with its shape, or whose shape is absurd,
    is refused before any value is read."""
    from modeltool.errors import LoadError
    from modeltool.tfgraph import protos
    from modeltool.tfgraph.bundle import Bundle

    bundle = Bundle(str(FIXTURES / "tf/tf1_ckpt/model"))
    for entry in bundle.entries.values():
        if entry.dtype != "string":
            assert entry.size == int(np.prod(entry.shape)) * np.dtype(entry.dtype).itemsize
    for dims, size, message in (([3, 4], 40, "needs 48"), ([10**7, 10**7], 4, "over modeltool's limit")):
        proto = protos.new("BundleEntryProto")
        proto.dtype, proto.size = 1, size
        for d in dims:
            proto.shape.dim.add(size=d)
        with pytest.raises(LoadError, match=message):
            bundle._add("bad", proto.SerializeToString())
