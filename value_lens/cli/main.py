"""The ``value-lens`` command line: run it and turn user errors into one line on stderr.

Subcommands (:mod:`value_lens.cli.commands`): ``build`` (ICRL data -> axis artifact), ``trace``
(token heatmaps of a text or file), ``steer`` (steered generation or a dose-response grid), ``eval`` (evaluation suites), ``report`` (HTML report of a
results folder), ``demo`` (the whole story on the embedded model), ``posttrain`` (LoRA DPO or
SFT on one word), ``compare`` (base against tuned along the axis) and, in
:mod:`value_lens.cli.sweep`, ``sweep`` (held-out layer sweep, or the method table), in
:mod:`value_lens.cli.export`, ``export`` (a llama.cpp control vector); :mod:`value_lens.cli.live`
adds ``monitor`` and ``chat`` (replies streamed with each token coloured by its value). Every
command writes into ``--out``; the batch commands record what they did in ``--out/run.json``, so
``value-lens report --out DIR`` can draw it all.

User errors (bad options, missing files, a ValueLensError) print one line to stderr and exit
non-zero without a traceback: 2 for bad usage, 1 for everything else.
"""

from __future__ import annotations

import sys

import typer

from value_lens.cli import commands as _commands  # noqa: F401  (registers the commands on app)
from value_lens.cli import export as _export  # noqa: F401  (registers export on app)
from value_lens.cli import live as _live  # noqa: F401  (registers monitor and chat on app)
from value_lens.cli import sweep as _sweep  # noqa: F401  (registers sweep on app)
from value_lens.cli.options import app
from value_lens.errors import ValueLensError

__all__ = ["app", "main"]


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _click_error() -> type[Exception]:
    """Typer 0.2x vendors click; its ClickException is the base of every usage error."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    command = typer.main.get_command(app)
    click_error = _click_error()
    try:
        rv = command.main(args=argv, prog_name="value-lens", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except click_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # help was printed
            return 0
        msg = exc.format_message()  # type: ignore[attr-defined]
        print(f"value-lens: error: {_one_line(msg)}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2) or 2)
    except (ValueLensError, OSError) as exc:
        print(f"value-lens: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        print("value-lens: interrupted", file=sys.stderr)
        return 130
    return int(rv) if isinstance(rv, int) else 0
