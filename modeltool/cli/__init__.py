"""The `modeltool` command line: one small module per command, errors mapped to exit codes here.

Exit codes: 0 success, 1 a check failed (`CheckFailed`), 2 unusable input or usage (a
`ModelToolError`: a known kind of failure), 3 an internal error (any other exception: a bug in
modeltool, never reported as a problem of the user's file). Errors print one line on stderr;
`--debug` adds the traceback. Commands import heavy modules inside their
function so `modeltool --help` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click

from modeltool import __version__
from modeltool.errors import CheckFailed, ModelToolError

INTERNAL_ERROR = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modeltool")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Inspect, convert, edit and verify TensorFlow/Keras models."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    from modeltool.cli.batch import batch_cmd
    from modeltool.cli.check import check_cmd
    from modeltool.cli.convert import convert_cmd
    from modeltool.cli.diff import diff_cmd
    from modeltool.cli.extract import extract_cmd
    from modeltool.cli.inspect import inspect_cmd
    from modeltool.cli.transfer import transfer_cmd
    from modeltool.cli.verify import verify_cmd

    for command in (inspect_cmd, convert_cmd, verify_cmd, transfer_cmd, extract_cmd, diff_cmd, check_cmd, batch_cmd):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    quiet = not debug and not os.environ.get("MODELTOOL_DEBUG")
    if quiet:
        _quiet_libraries()
    if debug:  # accepted anywhere on the line, not only before the command
        args = ["--debug"] + [a for a in args if a != "--debug"]
    with own_stderr(quiet):
        return _run(args, debug)


@contextmanager
def own_stderr(active: bool = True) -> Iterator[None]:
    """While a command runs, file descriptor 2 goes to /dev/null and Python's `sys.stderr` to the real
    stderr: what C++ runtimes log there (TensorFlow's "failed call to cuInit" whenever a graph first
    runs on a machine with CUDA libraries and no driver, oneDNN notices, onnxruntime and LiteRT
    warnings) never mixes with modeltool's own one-line messages, whenever it is printed. `--debug`
    keeps them."""
    if not active:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep apart
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    original = sys.stderr
    if _writes_fd2(original):  # else Python's stderr is already elsewhere (a caller's capture): leave it
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, errors="backslashreplace",
                               encoding=getattr(original, "encoding", None) or "utf-8")  # fmt: skip
    try:
        yield
    finally:
        sys.stderr.flush()
        if sys.stderr is not original:
            sys.stderr.close()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


def _writes_fd2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _run(args: list[str], debug: bool) -> int:
    try:
        cli.main(args=args, prog_name="modeltool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("modeltool: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else 2
    except CheckFailed as exc:  # a result, not an error: the report on stdout says what differs
        if str(exc):
            click.echo(f"modeltool: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except ModelToolError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"modeltool: error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("modeltool: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug in modeltool, not a verdict on the input
        if debug:
            traceback.print_exc()
        click.echo(
            f"modeltool: internal error (a bug in modeltool, not in your file): {type(exc).__name__}: "
            f"{_one_line(str(exc))[:300]}; rerun with --debug for the traceback and report it",
            err=True,
        )
        return INTERNAL_ERROR
    return 0


def _quiet_libraries() -> None:
    """Library chatter is not the user's concern on a CLI's stderr: Keras's UserWarnings and
    deprecation notices, absl's "You are saving your model as an HDF5 file". modeltool reports what
    matters in its own report (`--debug` or MODELTOOL_DEBUG=1 keeps them)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def run() -> None:
    sys.exit(main())
