"""`modeltool check MODEL [--policy policy.yaml] [--reference SRC]`: the pre-deployment CI gate."""

from __future__ import annotations

import click

from modeltool.cli.output import emit


@click.command("check")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--policy", "policy_path", type=click.Path(path_type=str), default=None,
              help="Policy YAML (docs/check.md); without one: finite weights, ONNX checker, no TFLite Flex/custom ops.")
@click.option("--reference", type=click.Path(path_type=str), default=None,
              help="A runnable model MODEL must match numerically (overrides parity.reference).")
@click.option("--input", "input_data", type=click.Path(path_type=str), default=None,
              help="Parity inputs as .npz (default: seeded random inputs).")
@click.option("--junit", "junit_path", type=click.Path(path_type=str), default=None,
              help="Also write a JUnit XML report here (one testcase per rule).")
@click.option("--signature", default=None, help="SavedModel signature for parity and latency.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="onnxruntime device for parity and latency.")
@click.option("--custom-objects", type=click.Path(path_type=str), default=None,
              help="Your module of custom layers, to run a Keras reference that has them.")
@click.option("--unsafe", is_flag=True, help="Allow running a reference's Lambda code (file rules never need it).")
@click.option("--force", is_flag=True, help="Overwrite an existing --junit file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def check_cmd(model: str, policy_path: str | None, reference: str | None, input_data: str | None,
              junit_path: str | None, signature: str | None, device: str, custom_objects: str | None, unsafe: bool,
              force: bool, as_json: bool) -> None:  # fmt: skip
    """Check MODEL against a policy: interface contract, size limits, finite weights, ONNX opsets and
    ops, TFLite Flex/custom ops and quantization, numerical parity with --reference, latency budget.
    Exit 0 when every rule passes, 1 when one fails, 2 when the model or the policy is unusable."""
    from modeltool.atomic import atomic_path, check_destination
    from modeltool.keras.rebuild import load_custom_objects
    from modeltool.ops.check import check_model
    from modeltool.policy import Policy, load_policy

    policy = load_policy(policy_path) if policy_path else Policy()
    if junit_path:
        check_destination(junit_path, force=True if force else _own_report(junit_path))
    report = check_model(
        model, policy, reference=reference, policy_path=policy_path, input_data=input_data, signature=signature,
        device=device, custom_objects=load_custom_objects(custom_objects), unsafe=unsafe,
    )  # fmt: skip
    if junit_path:
        with atomic_path(junit_path, force=True) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(report.junit())
    emit(report, as_json, f"{model}: policy check failed")


def _own_report(path: str) -> bool:
    """A JUnit file modeltool wrote before may be replaced (CI reruns); anything else needs --force."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return 'name="modeltool check"' in fh.read(4096)
    except OSError:
        return False
