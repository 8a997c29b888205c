"""The ``value-lens`` command line: parse options, call a pipeline step, say where results went."""

from value_lens.cli.main import main

__all__ = ["main"]
