"""Every command that reads a model takes the same model flags, spelled the same way."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from modeltool.cli import cli

KERAS_FLAGS = ("--custom-objects", "--unsafe", "--weights-from", "--config", "--json")
GRAPH_FLAGS = ("--inputs", "--outputs")
COMMANDS = {"inspect": True, "convert": True, "verify": True, "diff": True, "check": True,
            "extract": False, "transfer-weights": False}  # extract's --inputs/--outputs name layers  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_model_flags_everywhere(command: str) -> None:
    text = CliRunner().invoke(cli, [command, "--help"]).output
    missing = [f for f in KERAS_FLAGS + (GRAPH_FLAGS if COMMANDS[command] else ()) if f not in text]
    assert missing == []
    assert "-q, --quiet" in text


def test_running_commands_share_comparison_flags() -> None:
    for command in ("convert", "verify", "extract", "check"):
        text = CliRunner().invoke(cli, [command, "--help"]).output
        assert all(f in text for f in ("--input ", "--input-shape", "--seed", "--batch", "--atol", "--device"))


def test_inspect_quiet_is_a_readability_check(tmp_path) -> None:
    from tests.conftest import FIXTURES, run_cli

    assert run_cli("inspect", FIXTURES / "keras3/conv_bn.keras", "-q").stdout == ""
    (tmp_path / "x.keras").write_bytes(b"not a model")
    assert run_cli("inspect", tmp_path / "x.keras", "-q").returncode == 2


def test_an_empty_shape_after_equals_is_a_clear_error():
    """`--inputs keep_prob=` gave a TensorFlow shape error; it names the fix, `keep_prob=()` for a scalar."""
    from modeltool.errors import UsageError
    from modeltool.options import split_name_shape
    from modeltool.tfgraph.graph import parse_io

    with pytest.raises(UsageError, match=r"nothing after '='.*keep_prob=\(\)"):
        parse_io("X=1x784,keep_prob=", "inputs")
    assert parse_io("X=1x784,keep_prob=()", "inputs") == [("X", (1, 784)), ("keep_prob", ())]
    with pytest.raises(UsageError, match="nothing after '='"):
        split_name_shape("x=", "--input-shape")
