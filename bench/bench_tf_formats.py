"""Benchmark: TF graph formats, modeltool side by side with the tool people use today, same run.

    python bench/bench_tf_formats.py [--model ResNet50] [--out bench/results/bench_tf_formats.md]

Writes a Keras application (random weights) as a Keras 3 `model.export()` SavedModel, a
`tf.train.Checkpoint` and a frozen `.pb`, then measures each command in a fresh process (start-up
and imports included) with its own peak RSS:
- inspect a SavedModel: `modeltool inspect DIR` vs `saved_model_cli show --dir DIR --all`;
- list a checkpoint: `modeltool inspect PREFIX` vs `tf.train.list_variables(PREFIX)`;
- read a frozen graph: `modeltool inspect model.pb` vs parsing it with TF and importing it;
- convert the SavedModel to ONNX: `modeltool convert` (verification included) vs
  `python -m tf2onnx.convert --saved-model` (no verification).
Targets: inspection without TensorFlow is several times faster than the TF-based peer at a
fraction of its memory; conversion with verification is no slower than tf2onnx without it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Run, publish, run  # noqa: E402

WRITE = """
import os, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import keras, tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
name, out = sys.argv[1], sys.argv[2]
m = getattr(keras.applications, name)(weights=None)
m.export(os.path.join(out, 'sm'), verbose=False)
tf.train.Checkpoint(model=m).write(os.path.join(out, 'ckpt', 'model'))
fn = tf.function(lambda x: m(x)).get_concrete_function(tf.TensorSpec((None, *m.input_shape[1:]), tf.float32))
gd = convert_variables_to_constants_v2(fn).graph.as_graph_def()
open(os.path.join(out, 'model.pb'), 'wb').write(gd.SerializeToString())
"""
LIST_VARIABLES = "import sys, tensorflow as tf; print(len(tf.train.list_variables(sys.argv[1])))"
IMPORT_GRAPH = (
    "import sys, collections, tensorflow as tf\n"
    "gd = tf.compat.v1.GraphDef(); gd.ParseFromString(open(sys.argv[1], 'rb').read())\n"
    "print(collections.Counter(n.op for n in gd.node).most_common(5))\n"
    "g = tf.Graph()\nwith g.as_default(): tf.compat.v1.import_graph_def(gd, name='')"
)


def _row(task: str, ours: Run, peer: Run, peer_name: str) -> str:
    ok = "ok" if ours.rc == 0 and peer.rc == 0 else f"modeltool rc {ours.rc}, peer rc {peer.rc}"
    speed = peer.seconds / ours.seconds if ours.seconds else float("nan")
    mem = peer.peak_mb / ours.peak_mb if ours.peak_mb else float("nan")
    return (f"| {task} | {ours.seconds:.2f} s / {ours.peak_mb:.0f} MB | {peer_name}: {peer.seconds:.2f} s / "
            f"{peer.peak_mb:.0f} MB | {speed:.1f}x | {mem:.1f}x | {ok} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    py = sys.executable
    tool = [py, "-m", "modeltool"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        made = run([py, "-c", WRITE, args.model, tmp])
        if made.rc != 0:
            print(made.stderr[-2000:], file=sys.stderr)
            return 1
        sm, ckpt, pb = t / "sm", t / "ckpt" / "model", t / "model.pb"
        cli = shutil.which("saved_model_cli")
        peer_sm = (
            [cli, "show", "--dir", str(sm), "--all"]
            if cli
            else [py, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(sm), "--all"]
        )  # noqa: E501
        rows = [
            _row("inspect SavedModel", run([*tool, "inspect", str(sm)]), run(peer_sm), "saved_model_cli show --all"),
            _row("list checkpoint", run([*tool, "inspect", str(ckpt)]), run([py, "-c", LIST_VARIABLES, str(ckpt)]),
                 "tf.train.list_variables"),
            _row("read frozen .pb", run([*tool, "inspect", str(pb)]), run([py, "-c", IMPORT_GRAPH, str(pb)]),
                 "GraphDef parse + import_graph_def"),
            _row("SavedModel -> ONNX", run([*tool, "convert", str(sm), str(t / "a.onnx"), "-q"]),
                 run([py, "-m", "tf2onnx.convert", "--saved-model", str(sm), "--output", str(t / "b.onnx")]),
                 "tf2onnx.convert --saved-model (no verification)"),
        ]  # fmt: skip
    header = [
        f"{args.model}, weights=None, Python {sys.version.split()[0]}; each command in a fresh process",
        "",
        "| task | modeltool (time / peak RSS) | peer (time / peak RSS) | speed-up | memory ratio | status |",
        "|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
