"""One size format everywhere (inspect, convert, check): Keras's own units."""

from __future__ import annotations

from modeltool.sizes import format_size
from tests.conftest import FIXTURES, run_cli


def test_format() -> None:
    assert [format_size(n) for n in (0, 512, 63_386, 14_050_000, 3 << 30, None)] == [
        "0 B", "512 B", "61.90 KB", "13.40 MB", "3.00 GB", "unknown"]  # fmt: skip


def test_commands_agree(tmp_path) -> None:
    inspect = run_cli("inspect", FIXTURES / "keras3/conv_bn.keras")
    convert = run_cli("convert", FIXTURES / "keras3/conv_bn.keras", tmp_path / "m.onnx")
    size = format_size((FIXTURES / "keras3/conv_bn.keras").stat().st_size)
    assert f"File size: {size}" in inspect.stdout
    assert f"size: {size} -> " in convert.stdout
