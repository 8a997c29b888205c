"""Code corruptions for the correct-vs-corrupted code suite.

:func:`corrupt_code` applies one corruption kind to the source of one function:

* ``syntax``: drop a compound statement's colon, add a stray ``(``, or remove a line's indent;
  the result never parses.
* ``shuffle``: permute the function body's top-level statements (comments travel with the
  statement below them); the result parses.
* ``rename``: rename parameters and local variables to unused single letters (keyword
  arguments at call sites and attribute names are left alone); the result parses.
* ``logic``: flip a comparison, add one to an integer literal, or swap the operands of a
  non-commutative binary operator; the result parses.

Every result differs from the input; a function a kind cannot corrupt raises
:class:`~value_lens.errors.InputError`.

Example:
    >>> import random
    >>> src = "def area(width, height):\\n    if width < 0:\\n        return 0\\n    return width * height\\n"
    >>> print(corrupt_code(src, "rename", random.Random(0)), end="")
    def area(m, C):
        if m < 0:
            return 0
        return m * C
"""

from __future__ import annotations

import ast
import io
import random
import re
import string
import tokenize
from collections.abc import Callable
from functools import partial

from value_lens.errors import InputError

__all__ = ["CORRUPTIONS", "corrupt_code"]

CORRUPTIONS: tuple[str, ...] = ("syntax", "shuffle", "rename", "logic")
_COMPOUND = re.compile(
    r"^\s*(def|async def|class|if|elif|else|for|while|try|except|finally|with)\b"
)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _function(code: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise InputError(f"the code to corrupt does not parse ({e.msg}, line {e.lineno})") from e
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if len(tree.body) != 1 or not fns:
        raise InputError("corrupt_code expects the source of exactly one function definition")
    return fns[0]


def _body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    """The body without its docstring."""
    b = fn.body
    if b and isinstance(b[0], ast.Expr) and isinstance(getattr(b[0], "value", None), ast.Constant):
        if isinstance(b[0].value.value, str):  # type: ignore[attr-defined]
            return b[1:]
    return b


def _edit(lines: list[str], row: int, start: int, end: int, new: str) -> str:
    """Replace UTF-8 byte columns ``[start, end)`` of 1-based line ``row`` with ``new``."""
    b = lines[row - 1].encode()
    out = list(lines)
    out[row - 1] = (b[:start] + new.encode() + b[end:]).decode()
    return "".join(out)


def _put(lines: list[str], i: int, text: str) -> str:
    return "".join(lines[:i] + [text] + lines[i + 1 :])


def _syntax_candidates(code: str, rng: random.Random) -> list[Callable[[], str]]:
    lines = code.splitlines(keepends=True)
    cands: list[Callable[[], str]] = []
    for i, line in enumerate(lines):
        body, nl = line.rstrip("\r\n"), line[len(line.rstrip("\r\n")) :]
        if not body.strip() or body.lstrip().startswith("#"):
            continue

        if _COMPOUND.match(body) and body.rstrip().endswith(":"):
            cands.append(partial(_put, lines, i, body.rstrip()[:-1] + nl))
        cands.append(partial(_put, lines, i, body + " (" + nl))
        if i > 0 and body[:1] in (" ", "\t"):
            cands.append(partial(_put, lines, i, body.lstrip() + nl))
    rng.shuffle(cands)
    return cands


def _shuffle(code: str, rng: random.Random) -> list[Callable[[], str]]:
    fn = _function(code)
    stmts = _body(fn)
    if len(stmts) < 2:
        raise InputError("shuffle needs a function body with at least 2 statements")
    starts = [min([s.lineno] + [d.lineno for d in getattr(s, "decorator_list", [])]) for s in stmts]
    for s, prev in zip(starts[1:], stmts[:-1], strict=True):
        if s <= (prev.end_lineno or 0):
            raise InputError("shuffle cannot split statements that share a line")
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    head = lines[: starts[0] - 1]
    bounds = [starts[0] - 1] + [(p.end_lineno or 0) for p in stmts[:-1]] + [stmts[-1].end_lineno]
    blocks = ["".join(lines[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    tail = "".join(lines[bounds[-1] :])
    if len(set(blocks)) < 2:
        raise InputError("shuffle needs at least two different statements")

    def make() -> str:
        order = list(range(len(blocks)))
        while order == sorted(order) or [blocks[i] for i in order] == blocks:
            rng.shuffle(order)
        return "".join(head) + "".join(blocks[i] for i in order) + tail

    return [make]


def _rename(code: str, rng: random.Random) -> list[Callable[[], str]]:
    fn = _function(code)
    a = fn.args
    names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} | {
        x.arg for x in (a.vararg, a.kwarg) if x is not None
    }
    declared: set[str] = set()
    in_fstrings: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
        elif isinstance(node, ast.JoinedStr):
            in_fstrings.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    toks = list(tokenize.generate_tokens(io.StringIO(code).readline))
    used = {t.string for t in toks if t.type == tokenize.NAME}
    targets = sorted(n for n in names - declared - in_fstrings - {"self", "cls"} if len(n) > 1)
    letters = [c for c in string.ascii_letters if c not in used]
    if not targets or not letters:
        raise InputError("rename found no multi-letter local names (or no free letters)")
    rng.shuffle(letters)
    mapping = dict(zip(targets, letters, strict=False))

    def make() -> str:
        edits: list[tuple[int, int, int, str]] = []
        depth, headers = 0, list[int]()  # headers: paren depths of open def/lambda signatures
        for k, t in enumerate(toks):
            if t.type == tokenize.OP:
                if t.string in "([{":
                    depth += 1
                elif t.string in ")]}":
                    depth -= 1
                elif t.string == ":" and headers and headers[-1] == depth:
                    headers.pop()
            elif t.type == tokenize.NAME:
                if t.string in ("def", "lambda"):
                    headers.append(depth)
                    continue
                if t.string not in mapping:
                    continue
                prev = toks[k - 1].string if k else ""
                nxt = toks[k + 1].string if k + 1 < len(toks) else ""
                if prev == "." or (nxt == "=" and depth > 0 and not headers):
                    continue  # attribute, or keyword argument at a call site
                edits.append((t.start[0], t.start[1], t.end[1], mapping[t.string]))
        lines = code.splitlines(keepends=True)
        for row, c0, c1, new in sorted(edits, reverse=True):
            lines[row - 1] = lines[row - 1][:c0] + new + lines[row - 1][c1:]
        return "".join(lines)

    return [make]


_FLIP = {
    ast.Lt: (r"<(?!=)", ">="),
    ast.Gt: (r">(?!=)", "<="),
    ast.LtE: (r"<=", ">"),
    ast.GtE: (r">=", "<"),
    ast.Eq: (r"==", "!="),
    ast.NotEq: (r"!=", "=="),
}
_SWAP = {
    ast.Sub: "-",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.LShift: "<<",
    ast.RShift: ">>",
}
_ATOMS = (ast.Name, ast.Constant, ast.Attribute, ast.Call, ast.Subscript)


def _logic(code: str, rng: random.Random) -> list[Callable[[], str]]:
    fn = _function(code)
    lines = code.splitlines(keepends=True)
    cands: list[Callable[[], str]] = []

    def seg(n: ast.AST) -> str:
        return ast.get_source_segment(code, n) or ""

    for stmt in _body(fn):
        for node in ast.walk(stmt):
            one_line = getattr(node, "lineno", 0) == getattr(node, "end_lineno", -1)
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and one_line:
                spec = _FLIP.get(type(node.ops[0]))
                left, right = node.left, node.comparators[0]
                if spec is None or left.end_lineno != right.lineno:
                    continue
                b = lines[node.lineno - 1].encode()
                gap = b[left.end_col_offset : right.col_offset].decode()
                if len(re.findall(spec[0], gap)) == 1:
                    new_gap = re.sub(spec[0], spec[1], gap)
                    cands.append(
                        partial(
                            _edit,
                            lines,
                            node.lineno,
                            left.end_col_offset or 0,
                            right.col_offset,
                            new_gap,
                        )
                    )
            elif (
                isinstance(node, ast.Constant)
                and type(node.value) is int
                and one_line
                and re.fullmatch(r"[0-9_]+", seg(node))
            ):
                cands.append(
                    partial(
                        _edit,
                        lines,
                        node.lineno,
                        node.col_offset,
                        node.end_col_offset or 0,
                        str(node.value + 1),
                    )
                )
            elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP and one_line:
                ls, rs = seg(node.left), seg(node.right)
                if ls == rs or not ls or not rs:
                    continue
                wrap = [
                    s if isinstance(x, _ATOMS) else f"({s})"
                    for s, x in ((rs, node.right), (ls, node.left))
                ]
                new = f"{wrap[0]} {_SWAP[type(node.op)]} {wrap[1]}"
                cands.append(
                    partial(
                        _edit, lines, node.lineno, node.col_offset, node.end_col_offset or 0, new
                    )
                )
    rng.shuffle(cands)
    return cands


def corrupt_code(code: str, kind: str, rng: random.Random | int | None = None) -> str:
    """One corrupted version of a single function's source (see the module docs).

    Args:
        code: the source of one function definition (it must parse).
        kind: ``"syntax"``, ``"shuffle"``, ``"rename"`` or ``"logic"``.
        rng: a :class:`random.Random` or seed choosing among the possible corruptions.

    Raises:
        InputError: unknown kind, unparseable input, or no applicable corruption.
    """
    if kind not in CORRUPTIONS:
        raise InputError(f"unknown corruption kind {kind!r}; choose from {CORRUPTIONS}")
    r = rng if isinstance(rng, random.Random) else random.Random(rng)
    _function(code)
    makers = {
        "syntax": _syntax_candidates,
        "shuffle": _shuffle,
        "rename": _rename,
        "logic": _logic,
    }[kind](code, r)
    for make in makers:
        try:
            out = make()
        except (UnicodeDecodeError, IndexError):
            continue
        ok = not _parses(out) if kind == "syntax" else _parses(out)
        if out != code and ok:
            return out
    raise InputError(f"no {kind!r} corruption applies to this function; pick another function")
