"""`modeltool check MODEL [--policy policy.yaml] [--reference SRC]`: the pre-deployment CI gate."""

from __future__ import annotations

from typing import Any

import click

from modeltool.cli.options import comparison_options, json_option, model_options, options_from
from modeltool.cli.output import emit


@click.command("check")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--policy", "policy_path", type=click.Path(path_type=str), default=None,
              help="Policy YAML (docs/check.md); without one: finite weights, ONNX checker, no TFLite Flex/custom ops.")
@click.option("--reference", "reference_file", type=click.Path(path_type=str), default=None,
              help="A runnable model MODEL must match numerically (overrides parity.reference).")
@click.option("--junit", "junit_path", type=click.Path(path_type=str), default=None,
              help="Also write a JUnit XML report here (one testcase per rule).")
@click.option("--force", is_flag=True, help="Overwrite an existing --junit file.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code tells the result).")
@comparison_options
@model_options
@json_option
def check_cmd(model: str, policy_path: str | None, reference_file: str | None, junit_path: str | None, force: bool,
              quiet: bool, as_json: bool, **flags: Any) -> None:  # fmt: skip
    """Check MODEL against a policy: interface contract, size limits, finite weights, ONNX opsets and
    ops, TFLite Flex/custom ops and quantization, numerical parity with --reference, latency budget.
    Exit 0 when every rule passes, 1 when one fails, 2 when the model or the policy is unusable."""
    from modeltool.atomic import atomic_path, check_destination
    from modeltool.ops.check import check_model
    from modeltool.options import CompareOptions
    from modeltool.policy import Policy, load_policy

    policy = load_policy(policy_path) if policy_path else Policy()
    if junit_path:
        check_destination(junit_path, force=True if force else _own_report(junit_path))
    options = options_from(CompareOptions, flags)
    report = check_model(model, policy, options, reference=reference_file, policy_path=policy_path)
    if junit_path:
        with atomic_path(junit_path, force=True) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(report.junit())
    emit(report, as_json, f"{model}: policy check failed", quiet=quiet)


def _own_report(path: str) -> bool:
    """A JUnit file modeltool wrote before may be replaced (CI reruns); anything else needs --force."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return 'name="modeltool check"' in fh.read(4096)
    except OSError:
        return False
