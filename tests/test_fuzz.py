"""Fuzzing the loaders: real fixture files with bytes flipped, runs deleted, junk inserted or the
tail cut, fed to every loader (and to the lazy weight reads and summaries behind `inspect`). The
only exception allowed out is modeltool's own `ModelToolError`; a hang fails the example (SIGALRM).
Bounded: a fixed number of examples per format, derandomized so CI is reproducible."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modeltool
from modeltool.errors import ModelToolError
from tests.conftest import FIXTURES

#: format -> (fixture, the file inside it to mutate when it is a directory)
TARGETS = {
    "h5": (FIXTURES / "keras3/rnn_text.h5", None),
    "k2h5": (FIXTURES / "keras2/nested.h5", None),
    "weights.h5": (FIXTURES / "keras3/conv_bn.weights.h5", None),
    "k2weights": (FIXTURES / "keras2/rnn_text_weights.h5", None),
    "keras": (FIXTURES / "keras3/functional_multi_io.keras", None),
    "json": (FIXTURES / "keras3/nested.json", None),
    "yaml": (FIXTURES / "keras2/rnn_text.yaml", None),
    "onnx": (FIXTURES / "graphs/conv_bn.onnx", None),
    "tflite": (FIXTURES / "graphs/sequential_mlp.tflite", None),
    "pb": (FIXTURES / "tf/tf1_frozen.pb", None),
    "pbtxt": (FIXTURES / "tf/tf1_frozen.pbtxt", None),
    "savedmodel": (FIXTURES / "tf/keras2_sm", "saved_model.pb"),
    "checkpoint-index": (FIXTURES / "tf/keras3_ckpt", "ckpt-1.index"),
}
EXAMPLES = 200
TIMEOUT_S = 20

mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("delete"), st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 4096))),
    st.tuples(st.just("insert"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64))),
)  # fmt: skip


def mutate(data: bytes, how: tuple) -> bytes:
    kind, arg = how
    buf = bytearray(data)
    if kind == "flip":
        for where, xor in arg:
            buf[int(where * len(buf))] ^= xor
    elif kind == "cut":
        buf = buf[: int(arg * len(buf))]
    elif kind == "delete":
        start = int(arg[0] * len(buf))
        del buf[start : start + arg[1]]
    else:
        at = int(arg[0] * len(buf))
        buf[at:at] = arg[1]
    return bytes(buf)


def exercise(path: Path) -> None:
    """What `inspect --weights --stats` does: load, summarize, read every weight's statistics."""
    model = modeltool.load(path)
    modeltool.summary(model)
    modeltool.to_dict(model, weights=True, stats=False)
    for w in model.weights[:50]:
        if w.reader is not None:
            w.stats()


class _Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ANN001, ANN202
    raise _Hang()


@pytest.mark.parametrize("fmt", sorted(TARGETS))
def test_mutated_files_never_crash_or_hang(fmt: str, tmp_path_factory) -> None:
    src, inner = TARGETS[fmt]
    work = tmp_path_factory.mktemp(f"fuzz-{fmt.replace('.', '_')}")
    target = work / src.name
    if src.is_dir():
        shutil.copytree(src, target)
        victim = target / inner
    else:
        shutil.copy(src, target)
        victim = target
    original = victim.read_bytes()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(how=mutation)
    def run(how: tuple) -> None:
        victim.write_bytes(mutate(original, how))
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIMEOUT_S)
        try:
            exercise(target)
        except ModelToolError:
            pass
        except _Hang:
            pytest.fail(f"{fmt}: loading hung for {TIMEOUT_S}s after mutation {how!r}")
        except Exception as exc:  # noqa: BLE001 - the point: anything else is a bug
            pytest.fail(f"{fmt}: {type(exc).__name__} escaped after mutation {how!r}: {exc}")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

    run()
