"""Benchmark: `modeltool inspect` against `keras.models.load_model(...).summary()`, same run.

    python bench/bench_inspect.py [--repeat 3] [--model ResNet50]

Builds the Keras application with `weights=None` (random weights, ~100 MB), saves it as legacy
`.h5` and `.keras` in a temporary folder, then times each tool in a fresh interpreter (interpreter
start and imports included, as a user experiences it) and reads each process's own peak RSS.
Prints a Markdown table with the ratios. Targets (issue 2): modeltool under 0.5 s, at least 10x
faster than Keras, peak memory far below the file size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# VmHWM is the peak RSS of this process image (reset by exec, unlike ru_maxrss after a fork).
WRAPPER = """
import sys
{body}
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
sys.stderr.write("PEAK_KB=%s\\n" % hwm)
"""
BUILD = (
    "import os, sys\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport keras\n"
    "m = getattr(keras.applications, sys.argv[1])(weights=None)\n"
    "[m.save(p) for p in sys.argv[2:]]"
)
MODELTOOL = "from modeltool.cli import main\nrc = main(['inspect', sys.argv[1]])\nassert rc == 0"
KERAS = (
    "import os\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport keras\n"
    "keras.models.load_model(sys.argv[1], compile=False).summary()"
)


def measure(body: str, path: Path, repeat: int) -> tuple[float, float]:
    times, peaks = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", WRAPPER.format(body=body), str(path)],
                                capture_output=True, text=True, check=True)  # fmt: skip
        times.append(time.perf_counter() - start)
        peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK_KB=")][-1]
        peaks.append(int(peak.split("=")[1]) / 1024)
    return statistics.median(times), statistics.median(peaks)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="ResNet50")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"{args.model}.h5", Path(tmp) / f"{args.model}.keras"]
        # built in its own process, so this one stays small for the measurements below
        subprocess.run([sys.executable, "-c", BUILD, args.model, *map(str, files)], check=True,
                       capture_output=True)  # fmt: skip
        print("| file | size | modeltool inspect | keras load_model+summary | speed-up "
              "| modeltool peak RSS | keras peak RSS |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for f in files:
            mt, mt_mem = measure(MODELTOOL, f, args.repeat)
            ks, ks_mem = measure(KERAS, f, args.repeat)
            size = f.stat().st_size / 2**20
            print(f"| {f.name} | {size:.0f} MB | {mt:.2f} s | {ks:.2f} s | {ks / mt:.1f}x | "
                  f"{mt_mem:.0f} MB | {ks_mem:.0f} MB |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
