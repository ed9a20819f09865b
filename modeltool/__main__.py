"""`python -m modeltool` runs the CLI."""

from modeltool.cli import run

run()
