"""Typed errors: every failure modeltool reports is one of these.

The CLI maps them to exit codes in one place (`modeltool.cli.main`): a `ModelToolError` whose
`exit_code` is 2 means the input is unusable; 1 means a check failed. Messages name the file and
say what is wrong, so the CLI can print them as one line.
"""

from __future__ import annotations


class ModelToolError(Exception):
    """Base class of every error modeltool raises on purpose."""

    exit_code = 2


class FormatError(ModelToolError):
    """The file is missing, empty, of an unknown format, or not what its content claims."""


class LoadError(ModelToolError):
    """The format is known but the file is truncated, corrupted or inconsistent."""


class UnsupportedError(ModelToolError):
    """The file is valid but asks for something modeltool does not (yet) do."""


class UnsafeContentError(ModelToolError):
    """The model holds code (Lambda bytecode, custom objects) that needs --unsafe to run."""


class MissingDependencyError(ModelToolError):
    """An optional dependency (TensorFlow, onnxruntime, ...) is needed and not installed."""


class UsageError(ModelToolError):
    """The request itself is inconsistent (unknown layer name, bad option value)."""


class CheckFailed(ModelToolError):
    """A check ran and failed: numbers differ, a policy rule is violated."""

    exit_code = 1
