"""One way to write a size for people, everywhere modeltool prints one.

Units of 1024 bytes spelled KB, MB, GB, as Keras's own `model.summary()` writes them, so the figures
users compare with look alike; policies' `max_file_mb` counts in the same MB."""

from __future__ import annotations

KB = 1024
MB = KB * KB
UNITS = ("B", "KB", "MB", "GB", "TB")


def format_size(n: float | None) -> str:
    """`512 B`, `61.90 KB`, `13.40 MB`, `1.05 GB`; `unknown` for None."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in UNITS:
        if abs(value) < KB or unit == UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= KB
    return f"{n} B"  # pragma: no cover - the loop always returns
