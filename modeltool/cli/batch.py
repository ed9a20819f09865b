"""`modeltool batch PATH... --to onnx,tflite --out DIR`: a whole model zoo, each (model, target) job isolated.

The convert flags are `convert`'s own option objects (one declaration, the same spelling and help);
they apply to every model, and a manifest's entries override them per model.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from modeltool.cli.convert import convert_cmd
from modeltool.cli.options import json_option

#: convert's parameters that a batch sets itself or means otherwise (--to is a list, --html the batch's page)
NOT_BORROWED = {"src", "dst", "to", "force", "localize", "html", "quiet", "as_json"}


@click.command("batch")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--manifest",
    type=click.Path(path_type=str),
    default=None,
    help="YAML/JSON list of models with per-model targets, options and limits (see docs/batch.md).",
)
@click.option(
    "--to",
    "targets",
    default=None,
    metavar="TARGET[,TARGET]",
    help="Targets of every model, e.g. onnx,tflite (a manifest's `targets:` take precedence).",
)
@click.option(
    "--out",
    "-o",
    "out",
    required=True,
    type=click.Path(path_type=str),
    help="Folder for the artifacts, each job's report and log, the cache and batch-report.json.",
)
@click.option(
    "--jobs",
    "-j",
    "workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local jobs side by side (default: the cores; fewer when their memory would not fit).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1800.0,
    show_default=True,
    help="Seconds a job may run before it is killed.",
)
@click.option(
    "--max-memory",
    default=None,
    metavar="SIZE",
    help="Resident memory a job may use before it is killed, e.g. 8G (default: what is available).",
)
@click.option(
    "--memory-budget",
    default=None,
    metavar="SIZE",
    help="Local: expected peaks of the jobs side by side stay under this (default: memory available).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: processes on this machine; ray: Ray tasks (a local Ray, or the cluster at --ray-address).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="Ray cluster to run on, e.g. ray://head:10001 or auto (default: RAY_ADDRESS, else a local Ray).",
)
@click.option(
    "--cpus-per-job",
    type=click.IntRange(min=1),
    default=None,
    help="CPUs (TensorFlow/onnxruntime threads) of each job; Ray requests as many (default: cores / --jobs "
    "locally, 1 per Ray task).",
)
@click.option("--force", is_flag=True, help="Run every job again, even those the cache holds.")
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=str),
    default=None,
    help="Cache folder (default: OUT/.modeltool-cache).",
)
@click.option(
    "--junit", "junit_path", type=click.Path(path_type=str), default=None, help="Write JUnit XML: one testcase per job."
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=str),
    default=None,
    help="Write a self-contained HTML page: sortable table, links to each job's report.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
@json_option
def batch_cmd(paths: tuple[str, ...], manifest: str | None, targets: str | None, out: str, workers: int | None,
              timeout: float, max_memory: str | None, memory_budget: str | None, executor: str,
              ray_address: str | None, cpus_per_job: int | None, force: bool, cache_dir: str | None,
              junit_path: str | None, html_path: str | None, quiet: bool, as_json: bool,
              **flags: Any) -> None:  # fmt: skip
    """Convert and verify every model under PATH... (files or folders, found by content) and/or listed in
    --manifest, to each target. Each (model, target) job runs in its own process within --timeout and
    --max-memory; results are cached by content, so a rerun skips what is done. Exit 0 when every job
    passed, 1 when any failed, 2 when nothing could run."""
    from modeltool.batch.manifest import discover_models, load_manifest, normalize_options, parse_size, parse_targets
    from modeltool.batch.progress import ProgressLine
    from modeltool.batch.run import BatchSettings, run_batch
    from modeltool.cli.output import echo_json
    from modeltool.errors import CheckFailed, UsageError

    if not paths and not manifest:
        raise UsageError("give the models: PATH... (files or folders) and/or --manifest models.yaml")
    for path in (junit_path, html_path):
        if path:
            _check_report_path(path, force)
    run_targets = parse_targets(targets) if targets else ()
    if paths and not run_targets:
        raise UsageError("--to: give the targets of the models under PATH..., e.g. --to onnx,tflite")
    options = normalize_options(flags, os.getcwd(), "the command line")
    exclude = (out, cache_dir) if cache_dir else (out,)
    entries, skipped = discover_models(list(paths), run_targets, options, exclude=exclude) if paths else ([], [])
    if manifest:
        more, more_skipped = load_manifest(manifest, run_targets, options, exclude=exclude)
        entries, skipped = _merge(entries, more), skipped + more_skipped
    settings = BatchSettings(out=out, jobs=workers, timeout=timeout, max_memory=parse_size(max_memory),
                             memory_budget=parse_size(memory_budget, "--memory-budget"), force=force,
                             executor=executor, ray_address=ray_address, cache=cache_dir,
                             cpus_per_job=cpus_per_job)  # fmt: skip
    _interrupt_on_sigterm()
    report = run_batch(entries, settings, skipped, ProgressLine(None if quiet else sys.stderr))
    if junit_path:
        _write(junit_path, report.junit())
    if html_path:
        _write(html_path, report.html(html_path))
    if as_json:
        echo_json(report.to_dict())
    elif not quiet:
        click.echo(report.render())
    if not report.passed:
        counts = report.counts()
        raise CheckFailed(f"{counts['failed']} of {counts['jobs']} jobs failed")


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI system's time limit, `kill`) ends the run as Ctrl-C does, through the executors'
    cleanup that kills the running jobs: each job runs in a session of its own (so that it can be
    killed whole at its limits), and no signal sent to this process reaches it by itself."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _merge(first: list, second: list) -> list:
    """Models from PATH... then the manifest's; an id given twice gets `~2` (the manifest's)."""
    from modeltool.batch.manifest import ModelEntry

    ids = {e.id for e in first}
    out = list(first)
    for e in second:
        mid, n = e.id, 1
        while mid in ids:
            n += 1
            mid = f"{e.id}~{n}"
        ids.add(mid)
        out.append(e if mid == e.id else ModelEntry(mid, e.path, e.targets, e.options, e.timeout, e.max_memory))
    return out


def _check_report_path(path: str, force: bool) -> None:
    """Before any job runs: the report's folder exists, and an existing file is a batch report (CI
    reruns replace their own) or --force says to replace it."""
    from modeltool.atomic import check_destination
    from modeltool.batch.report import HTML_GENERATOR, JUNIT_SUITE

    own = False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
        own = f'name="{JUNIT_SUITE}"' in head or f'content="{HTML_GENERATOR}"' in head
    except OSError:
        pass
    check_destination(path, force=force or own)


def _write(path: str, text: str) -> None:
    from modeltool.atomic import atomic_path

    with atomic_path(path, force=True) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


for _param in convert_cmd.params:
    if _param.name not in NOT_BORROWED:
        batch_cmd.params.append(_param)
