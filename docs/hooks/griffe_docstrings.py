"""Griffe extension: adapt the codebase's docstrings to Markdown rendering.

value_lens docstrings are Google style and written to read well in ``help()``:

* a singular ``Example:`` heading, which griffe would render as an admonition with the doctest
  lines as Markdown text; it becomes ``Examples:`` (doctest lines rendered as code);
* Sphinx roles such as ``:func:`steer``` or ``:class:`~value_lens.fitting.axis.ValueAxis```, which
  Markdown would print literally; they become inline code (``~`` keeps the last component).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|const|ref):`(~?)([^`]+)`")


def _role(m: re.Match[str]) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def clean(text: str) -> str:
    """The docstring text with both rewrites applied.

    >>> clean("Use :func:`steer` or :class:`~value_lens.fitting.axis.ValueAxis`.")
    'Use `steer` or `ValueAxis`.'
    """
    return _ROLE.sub(_role, _HEADING.sub(r"\1Examples:", text))


class DocstringCleanup(griffe.Extension):
    """Apply :func:`clean` to every loaded object's docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = clean(obj.docstring.value)
