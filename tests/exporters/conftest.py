"""Helpers for conversion tests: fixture sources and their custom objects."""

from __future__ import annotations

from tests.conftest import FIXTURES

CUSTOM_OBJECTS = str(FIXTURES / "custom_objects.py")
KERAS3 = sorted(p.name for p in (FIXTURES / "keras3").glob("*.keras"))
KERAS2 = sorted(p.name for p in (FIXTURES / "keras2").glob("*.h5") if not p.name.endswith("_weights.h5"))
