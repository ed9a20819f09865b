"""KerasHub backbones (BERT, GPT-2, Gemma, Llama, Mistral, ViT, ResNet) built from small seeded
configs, saved as `.keras` under the TensorFlow and the JAX backends by `fixtures/make_hub_models.py`,
then inspected and converted by modeltool. Every expected number comes from Keras itself: the test
loads the saved file with `keras.saving.load_model` and computes the outputs, and reads
`count_params()` and shapes off the model Keras built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, ROOT, run_cli

pytest.importorskip("keras_hub")

MODELS = ["bert", "gpt2", "gemma", "llama", "mistral", "vit", "resnet"]
TEXT = {"bert", "gpt2", "gemma", "llama", "mistral"}
#: backbones whose every building block has a direct converter (all of them, today)
DIRECT = set(MODELS)
#: preset configurations beyond the defaults (fixtures/make_hub_models.py VARIANTS) and a user's own
#: functional model of KerasHub layers, without and with a mask carried by the tensors
EXTRA = ["mistral_window", "gemma2", "blocks", "blocks_masked"]


def _make(out: Path, backend: str, names: list[str] | None = None) -> dict[str, dict]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(FIXTURES / "make_hub_models.py"), str(out), *(names or [])],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in rows}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """{backend: {model: row}}: every backbone saved by Keras on TensorFlow and on JAX."""
    root = tmp_path_factory.mktemp("hub")
    return {backend: _make(root / backend, backend) for backend in ("tensorflow", "jax")}


def _keras_model(path: str):
    import keras
    import keras_hub  # noqa: F401 - registers its classes, as a user's program would

    return keras.saving.load_model(path, compile=False)


def _feed(model, length: int = 12, batch: int = 2) -> dict[str, np.ndarray]:
    """What a tokenizer would give: ids in the vocabulary, a padding mask with a padded tail."""
    rng = np.random.default_rng(7)
    vocab = getattr(model, "vocabulary_size", None)
    feed = {}
    for t in model.inputs:
        name = t.name
        shape = tuple(batch if i == 0 else (length if d is None else d) for i, d in enumerate(t.shape))
        if name == "token_ids":
            feed[name] = rng.integers(0, vocab, size=shape).astype("int32")
        elif name == "segment_ids":
            feed[name] = rng.integers(0, 2, size=shape).astype("int32")
        elif name == "padding_mask":
            mask = np.ones(shape, "int32")
            mask[1:, length // 2 :] = 0
            feed[name] = mask
        else:
            feed[name] = rng.standard_normal(shape).astype("float32")
    return feed


def _keras_outputs(model, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    struct = model._inputs_struct
    if isinstance(struct, dict):
        x = {k: feed[k] for k in struct}
    else:
        x = [feed[t.name] for t in model.inputs] if len(model.inputs) > 1 else feed[model.inputs[0].name]
    out = model(x, training=False)
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    return {"output_0": np.asarray(out)}


def _run_written(path: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from modeltool.sources import open_runner

    with open_runner(path) as runner:
        names = [s.name for s in runner.input_specs()]
        given = {n: feed[n] for n in names} if set(names) <= set(feed) else dict(zip(names, feed.values()))
        return runner.infer(given)


def _assert_same(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], atol: float = 1e-4) -> None:
    assert set(expected) == set(got), (sorted(expected), sorted(got))
    for name, a in expected.items():
        np.testing.assert_allclose(got[name], a, atol=atol, rtol=1e-3, err_msg=name)


# ---------------------------------------------------------------- inspect


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_inspect_shows_the_inside_with_keras_figures(zoo, name):
    """Every top-level layer of the backbone with Keras's own output shape and count_params(), the
    inputs with their names, dtypes and meaning."""
    path = zoo["tensorflow"][name]["file"]
    done = run_cli("inspect", path, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    native = _keras_model(path)
    assert report["params"]["total"] == native.count_params()
    top = report["layers"][0]
    assert top["params"] == native.count_params() and "library" in top["flags"]
    inner = {layer["name"]: layer for layer in top["layers"]}
    for layer in native.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        assert inner[layer.name]["class_name"] == type(layer).__name__
        assert inner[layer.name]["params"] == layer.count_params(), layer.name
        assert inner[layer.name]["output_shape"] == list(layer.output.shape), layer.name
    auto = lambda n: n.startswith("keras_tensor")  # noqa: E731 - Keras numbers unnamed inputs per build
    assert [(i["name"] if not auto(i["name"]) else "", i["dtype"], i["shape"]) for i in report["inputs"]] == [
        (t.name if not auto(t.name) else "", t.dtype, list(t.shape)) for t in native.inputs
    ]
    if name in TEXT:
        meanings = report["extra"]["input_meanings"]
        assert meanings["token_ids"] == f"token ids in [0, {native.vocabulary_size})"
        assert meanings["padding_mask"] == "padding mask"
        # a transformer block shows its attention and feed-forward parts, with shapes
        block = next(layer for layer in top["layers"] if layer.get("layers"))
        parts = [p["class_name"] for p in block["layers"]]
        assert any("Attention" in c for c in parts) and any(c in ("Dense", "EinsumDense") for c in parts)
        assert all(p["output_shape"] is not None for p in block["layers"])


def test_inspect_committed_fixture_text():
    done = run_cli("inspect", FIXTURES / "hub/bert_tiny.keras")
    assert done.returncode == 0, done.stderr
    assert "token_ids  (None, None)  int32  (token ids in [0, 100))" in done.stdout
    assert "transformer_layer_0 (TransformerEncoder)" in done.stdout
    assert "Library layer bert_backbone (BertBackbone)" in done.stdout


# ---------------------------------------------------------------- convert


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_onnx_from_both_backends_computes_what_keras_computes(zoo, name, tmp_path):
    """ONNX from the TensorFlow- and the JAX-saved file by both routes where they apply (the direct
    one where every building block has a converter), each verified by modeltool (Keras loading the
    file itself, two sequence lengths), then run at a third length against Keras's own outputs."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    routes = ("tf", "direct") if name in DIRECT else ("tf",)
    for backend, via in [(b, r) for b in ("tensorflow", "jax") for r in routes]:
        src = zoo[backend][name]["file"]
        out = str(tmp_path / f"{name}_{backend}_{via}.onnx")
        report = convert(src, out, ConvertOptions(via=via))
        assert report.passed, report.render()
        assert report.details["route"] == via
        assert report.verification.reference_kind.startswith("writer: Keras 3"), report.verification.reference_kind
        native = _keras_model(src)
        feed = _feed(native, length=9)
        _assert_same(_keras_outputs(native, feed), _run_written(out, feed))
        if name in TEXT:
            assert any("@13" in o.name for o in report.verification.outputs)  # a second length verified
            import onnx

            proto = onnx.load(out, load_external_data=False)
            dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                    for i in proto.graph.input}  # fmt: skip
            assert dims["token_ids"] == ["batch", "sequence"], dims


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> dict[str, dict]:
    return _make(tmp_path_factory.mktemp("hub_extra"), "jax", EXTRA)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_auto_route_says_which_route_and_why(zoo, name, tmp_path):
    """`--via auto` writes a backbone made of blocks with direct converters without TensorFlow's
    tracing or tf2onnx, and says so."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    report = convert(zoo["jax"][name]["file"], str(tmp_path / f"{name}.onnx"), ConvertOptions(verify=False))
    assert report.details["route"] == "direct", report.details["route_reason"]
    assert "every layer has a direct converter" in report.details["route_reason"]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXTRA)
def test_preset_variants_and_own_models_by_the_direct_route(extra, name, tmp_path):
    """Mistral's sliding window (shorter than the padded tail: queries with every key masked), its
    own head size and rotary scaling; Gemma 2's post-norms, soft cap and alternating windows; a
    user's functional model of TokenAndPositionEmbedding, TransformerEncoder and a TransformerDecoder
    with cross-attention, its weights read from the file by the layers' declarations. Each verified
    by modeltool and run against Keras on a padded batch. A mask carried by the tensors into the
    blocks (`mask_zero=True`) is not written directly: `auto` takes the TensorFlow route and says why."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    src = extra[name]["file"]
    out = str(tmp_path / f"{name}.onnx")
    report = convert(src, out, ConvertOptions())
    assert report.passed, report.render()
    if name == "blocks_masked":
        assert report.details["route"] == "tf"
        assert "a mask carried by the tensors" in report.details["route_reason"], report.details["route_reason"]
    else:
        assert report.details["route"] == "direct", report.details["route_reason"]
    native = _keras_model(src)
    feed = _feed(native, length=12) if name not in ("blocks", "blocks_masked") else _block_feed()
    expected, got = _keras_outputs(native, feed), _run_written(out, feed)
    assert len(got) == 1
    _assert_same({"output_0": expected["output_0"]}, {"output_0": next(iter(got.values()))})


def _block_feed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    source = rng.integers(1, 50, size=(2, 10)).astype("int32")
    source[1, 6:] = 0  # padding: masked in the encoder of `blocks_masked`
    return {"tokens": rng.integers(0, 50, size=(2, 9)).astype("int32"), "source_tokens": source}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_tflite_and_savedmodel_compute_what_keras_computes(zoo, name, tmp_path):
    """TFLite with the sequence fixed (builtin ops only) and a SavedModel, each run on the same
    inputs as Keras loading the saved file."""
    from modeltool.convert import convert
    from modeltool.options import ConvertOptions

    src = zoo["tensorflow"][name]["file"]
    native = _keras_model(src)
    feed = _feed(native, length=16, batch=1)
    shapes = {k: v.shape for k, v in feed.items()} if name in TEXT else {}  # images: fixed by the model
    expected = _keras_outputs(native, feed)
    tfl = str(tmp_path / f"{name}.tflite")
    report = convert(src, tfl, ConvertOptions(input_shapes=shapes))
    assert report.passed and not report.details["flex_ops"], report.render()
    _assert_same(expected, _run_written(tfl, feed))
    saved = str(tmp_path / f"{name}_sm") + "/"
    report = convert(src, saved, ConvertOptions())
    assert report.passed, report.render()
    _assert_same(expected, _run_written(saved, feed))


def test_tflite_with_open_sequence_says_which_shape_to_fix(tmp_path):
    """A decoder whose sequence stays open needs Flex ops; the message names the --input-shape fix."""
    done = run_cli("convert", FIXTURES / "hub/bert_tiny.keras", tmp_path / "b.tflite")
    if done.returncode == 0:  # the converter lowered everything: nothing to say
        return
    assert done.returncode == 2
    assert "--input-shape token_ids=1,128" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_feeds_are_valid_tokenizer_outputs():
    from modeltool.feeds import random_feed
    from modeltool.loaders import load
    from modeltool.runners.keras import KerasRunner  # noqa: F401 - the specs below are what it reports

    ir = load(str(FIXTURES / "hub/bert_tiny.keras"))
    from modeltool.ir import TensorSpec

    specs = [TensorSpec(n, (None, None), "int32") for n in ("padding_mask", "segment_ids", "token_ids")]
    feed = random_feed(specs, ir=ir, seed=3, batch=3)
    assert feed["token_ids"].max() < 100 and feed["token_ids"].min() >= 0
    assert set(np.unique(feed["segment_ids"])) <= {0, 1}
    mask = feed["padding_mask"]
    assert mask[0].all() and not mask[1:].all() and mask[:, 0].all()  # padded tails, never an empty row
    for row in mask:
        ones = int(row.sum())
        assert row[:ones].all() and not row[ones:].any()


# ---------------------------------------------------------------- trust


def _write_keras(path: Path, config: dict, weights_from: Path | None = None) -> None:
    """A .keras archive with `config` and the weights member of another archive."""
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("config.json", json.dumps(config))
        out.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2026-12-07"}))
        if weights_from is not None:
            with zipfile.ZipFile(weights_from) as src:
                out.writestr("model.weights.h5", src.read("model.weights.h5"))


def _tiny_config() -> dict:
    with zipfile.ZipFile(FIXTURES / "hub/bert_tiny.keras") as z:
        return json.loads(z.read("config.json"))


def test_module_string_from_the_file_is_never_imported(tmp_path):
    """The file's module path is replaced by one that does not exist: Keras would fail importing
    it; modeltool resolves the registered name in keras_hub's registry and converts."""
    cfg = _tiny_config()
    cfg["module"] = "keras_hub.src.no_such_module_modeltool_test"
    path = tmp_path / "moved.keras"
    _write_keras(path, cfg, FIXTURES / "hub/bert_tiny.keras")
    done = run_cli("convert", path, tmp_path / "m.onnx", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"]


def test_unregistered_library_name_is_refused(tmp_path):
    cfg = _tiny_config()
    cfg["registered_name"] = "keras_hub>NoSuchBackbone"
    path = tmp_path / "odd.keras"
    _write_keras(path, cfg, FIXTURES / "hub/bert_tiny.keras")
    done = run_cli("convert", path, tmp_path / "o.onnx")
    assert done.returncode == 2
    assert "does not register" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_library_not_installed_inspect_reads_the_file_convert_says_what_to_install(tmp_path):
    """A keras_rs class (keras-rs is not installed here): inspect still lists weights and counts and
    names the package; convert exits 2 naming it."""
    cfg = _tiny_config()
    cfg["module"], cfg["registered_name"] = "keras_rs.src.layers.thing", "keras_rs>Thing"
    path = tmp_path / "rs.keras"
    _write_keras(path, cfg, FIXTURES / "hub/bert_tiny.keras")
    assert not __import__("importlib").util.find_spec("keras_rs")
    done = run_cli("inspect", path)
    assert done.returncode == 0, done.stderr
    assert "pip install keras-rs" in done.stdout and "Total params: 4,672" in done.stdout
    done = run_cli("convert", path, tmp_path / "rs.onnx")
    assert done.returncode == 2 and "pip install keras-rs" in done.stderr, done.stderr


MYLIB = '''
import keras

@keras.saving.register_keras_serializable(package="modeltool_trust_demo")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def test_trust_adds_an_installed_package(tmp_path):
    """A model using a class registered by another installed package: refused by default, converted
    and verified with --trust PKG (the package is imported by that name)."""
    pkg = tmp_path / "site" / "modeltool_trust_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(MYLIB)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    make = (
        "import keras, modeltool_trust_demo as m\n"
        "x = keras.Input((3,)); y = m.Doubler()(keras.layers.Dense(2)(x))\n"
        f"keras.Model(x, y).save({str(tmp_path / 'd.keras')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", make], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    refused = run_cli("convert", tmp_path / "d.keras", tmp_path / "d.onnx", env=env)
    assert refused.returncode == 2 and "modeltool_trust_demo" in refused.stderr, refused.stderr
    done = run_cli("convert", tmp_path / "d.keras", tmp_path / "d.onnx", "--trust", "modeltool_trust_demo",
                   "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"]
