"""Helpers for conversion tests: fixture sources and their custom objects."""

from __future__ import annotations

from tests.conftest import FIXTURES

CUSTOM_OBJECTS = str(FIXTURES / "custom_objects.py")
KERAS3 = sorted(p.name for p in (FIXTURES / "keras3").glob("*.keras"))
KERAS2 = sorted(p.name for p in (FIXTURES / "keras2").glob("*.h5") if not p.name.endswith("_weights.h5"))

REFERENCES = FIXTURES / "references"
#: float32 conversions must reproduce the writer's numbers within the documented default tolerance
WRITER_ATOL, WRITER_RTOL = 1e-4, 1e-3


def writer_reference(fixture_id: str):
    """The stored inputs/outputs the fixture's own writer computed (fixtures/make_references.py), or None."""
    import numpy as np

    path = REFERENCES / f"{fixture_id}.npz"
    if not path.exists():
        return None
    data = np.load(path)
    inputs = {k[3:]: data[k] for k in data.files if k.startswith("in/")}
    order = __import__("json").loads(str(data["output_order"]))
    return inputs, [(n, data[f"out/{n}"]) for n in order], str(data["writer"])


def assert_matches_writer(fixture_id: str, written: str) -> str:
    """Run a written ONNX/TFLite/SavedModel file on the writer's stored inputs and compare its outputs
    with the writer's; returns the writer's name. Inputs and outputs pair by name, else by position."""
    import numpy as np

    from modeltool.sources import open_runner

    ref = writer_reference(fixture_id)
    assert ref is not None, f"no stored writer reference for {fixture_id}"
    inputs, expected, writer = ref
    with open_runner(written) as runner:
        specs = runner.input_specs()
        names = [s.name for s in specs]
        feed = (
            {n: inputs[n] for n in names}
            if set(names) == set(inputs)
            else {s.name: v for s, v in zip(specs, inputs.values())}
        )  # fmt: skip
        out = runner.infer(feed)
    got = [out[n] for n, _ in expected] if {n for n, _ in expected} == set(out) else list(out.values())
    assert len(got) == len(expected), f"{written}: {len(got)} outputs, the writer {len(expected)}"
    for (name, want), have in zip(expected, got):
        np.testing.assert_allclose(
            np.asarray(have, np.float64), want, atol=WRITER_ATOL, rtol=WRITER_RTOL,
            err_msg=f"{written}: output {name} differs from what {writer} computed",
        )  # fmt: skip
    return writer


def trained_looking(model, seed: int = 2) -> None:
    """Give every BatchNormalization of a freshly built Keras model moving statistics that look
    trained (means around 0, variances 0.5-1.5), so that no layer is silently idle in a test."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            w = layer.get_weights()
            layer.set_weights([*w[:-2], (rng.standard_normal(w[-2].shape) * 0.1).astype("float32"),
                               rng.uniform(0.5, 1.5, w[-1].shape).astype("float32")])  # fmt: skip
