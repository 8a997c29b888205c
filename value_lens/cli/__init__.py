"""The ``value-lens`` command line: parse options, call a pipeline step, say where results went.

Modules, bottom up: :mod:`~value_lens.cli.options` (the typer app, shared options and helpers)
< :mod:`~value_lens.cli.commands` (one function per command) < :mod:`~value_lens.cli.main`
(:func:`main`, the entry point).
"""

from value_lens.cli.main import app, main

__all__ = ["app", "main"]
