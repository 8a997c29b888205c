"""Griffe extension: read ``Example:`` docstring sections as examples (code), not admonitions.

value_lens docstrings use Google style with a singular ``Example:`` heading; griffe only treats
the plural ``Examples:`` as an examples section (doctest lines rendered as code) and would render
the doctest lines as Markdown text otherwise.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` headings to ``Examples:`` on every loaded object."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:  # noqa: ARG002
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
