"""The protobuf wire format (varints, tagged fields), read by hand where the message classes would sit
above the reader: format detection, and the LevelDB-style checkpoint index, which uses the same
varints."""

from __future__ import annotations

from collections.abc import Iterator


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Top-level fields of a protobuf message: (number, wire type, int or bytes); ValueError when
    the bytes are not protobuf."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field 0")
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            size, pos = varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """The base-128 varint at `pos` and the position after it; ValueError past the end."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
