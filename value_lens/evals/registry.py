"""The registry of evaluation suites: what ``value-lens eval``, the results folder and the report
know about each suite, kept in one record per suite.

A :class:`Suite` names its runner (what ``value-lens eval --suite NAME`` runs), the result tables
it writes into a results folder (name -> file), the report sections built from those tables
(figures by the name of a :mod:`value_lens.viz` function, or any callable ``(table) -> figure``)
and, optionally, a headline record kept in ``run.json``. Each suite registers itself from its own
module with :func:`register_suite`; :func:`value_lens.pipeline.read_steps.evaluate`,
:data:`value_lens.pipeline.rundir.RESULT_FILES`, the report and the CLI's ``--suite`` help all
read this registry, so adding a suite is one file plus one registration.

Example:
    >>> list(suites())
    ['code', 'backtracking', 'confidence']
    >>> get_suite("code").tables["code_summary"].file
    'code_summary.csv'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from value_lens.core.protocols import GenerativeModel
from value_lens.errors import InputError
from value_lens.evals._common import EvalResult
from value_lens.fitting.axis import ValueAxis

__all__ = [
    "Figure",
    "Section",
    "Suite",
    "SuiteRequest",
    "Table",
    "get_suite",
    "register_suite",
    "suite_help",
    "suites",
    "unregister_suite",
]


@dataclass(frozen=True)
class SuiteRequest:
    """What ``value-lens eval`` asks of a suite: the size and settings of one run.

    Attributes:
        n: problems (or questions); seed: the run's seed.
        max_new_tokens: tokens per generated reply; enable_thinking: Qwen3's template switch.
        n_boot: bootstrap resamples of headline intervals that use a bootstrap.
        folder: the results folder (resume logs go there); progress: show progress bars.
    """

    n: int = 8
    seed: int = 0
    max_new_tokens: int = 128
    enable_thinking: bool = False
    n_boot: int = 2000
    folder: str | os.PathLike[str] | None = None
    progress: bool = True


@dataclass(frozen=True)
class Table:
    """A result table of a suite: its file in the results folder and how to get it."""

    file: str
    pick: Callable[[EvalResult], pd.DataFrame]


@dataclass(frozen=True)
class Figure:
    """A report figure: ``function`` (a :mod:`value_lens.viz` name, or a callable) of a table."""

    function: str | Callable[[pd.DataFrame], Any]
    table: str


@dataclass(frozen=True)
class Section:
    """A report section: its heading and items in order (:class:`Figure` or a table's name),
    with an optional sentence built from the suite's ``run.json`` headline record."""

    heading: str
    items: tuple[Figure | str, ...]
    sentence: Callable[[dict[str, Any]], str] | None = None

    @property
    def tables(self) -> list[str]:
        """The result tables this section reads."""
        return [i.table if isinstance(i, Figure) else i for i in self.items]


@dataclass(frozen=True)
class Suite:
    """One evaluation suite (see the module docs).

    Attributes:
        name: what ``--suite`` takes; help: one line for the CLI.
        run: ``(model, axis, layer, request) -> EvalResult``.
        tables: ``{result name: Table}`` written after a run (names are unique across suites).
        sections: the report sections.
        headline: ``(result, request) -> record or None``, kept in ``run.json`` under
            ``meta_key`` (and shown by the sections' ``sentence``).
        order: where its sections go in the report (lower first; ties by name).
    """

    name: str
    help: str
    run: Callable[[GenerativeModel, ValueAxis, int, SuiteRequest], EvalResult]
    tables: Mapping[str, Table]
    sections: tuple[Section, ...]
    headline: Callable[[EvalResult, SuiteRequest], dict[str, Any] | None] | None = None
    meta_key: str | None = None
    order: int = 100

    def __post_init__(self) -> None:
        missing = sorted({t for s in self.sections for t in s.tables} - set(self.tables))
        if missing:
            raise InputError(f"suite {self.name!r}: sections read unknown tables {missing}")
        if self.headline is not None and not self.meta_key:
            raise InputError(f"suite {self.name!r}: a headline needs a meta_key")


_SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> Suite:
    """Add ``suite`` to the registry (a suite of the same name is replaced); returns it.

    Raises:
        InputError: if one of its result tables is already another suite's.
    """
    for other in _SUITES.values():
        taken = set(other.tables) & set(suite.tables) if other.name != suite.name else set()
        if taken:
            raise InputError(
                f"suite {suite.name!r} names result tables {sorted(taken)} already written by "
                f"suite {other.name!r}; rename them"
            )
    _SUITES[suite.name] = suite
    return suite


def unregister_suite(name: str) -> Suite:
    """Remove a registered suite (e.g. one registered for one experiment); returns it."""
    if name not in _SUITES:
        raise InputError(f"no suite named {name!r} is registered")
    return _SUITES.pop(name)


def suites() -> dict[str, Suite]:
    """Every registered suite by name, in report order (the built-in ones included)."""
    import value_lens.evals  # noqa: F401  (the built-in suites register on import)

    return {s.name: s for s in sorted(_SUITES.values(), key=lambda s: (s.order, s.name))}


def get_suite(name: str) -> Suite:
    """The suite registered as ``name``, or an error that lists them."""
    found = suites().get(name)
    if found is None:
        raise InputError(f"unknown suite {name!r}; use one of {tuple(suites())}")
    return found


def suite_help() -> str:
    """One line per suite for the CLI's ``--suite`` help."""
    return "; ".join(f"{s.name}: {s.help}" for s in suites().values())
