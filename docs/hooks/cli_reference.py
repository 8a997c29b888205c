"""mkdocs hook: render the ``value-lens`` command reference from the typer app itself.

A page containing the marker ``<!-- value-lens-cli -->`` gets one section per command (its help
text, usage line and an options table), read from ``value_lens.cli.app`` at build time, so the
reference cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- value-lens-cli -->"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _param_row(param: Any, ctx: Any) -> str | None:
    if getattr(param, "hidden", False) or param.name == "help":
        return None
    record = param.get_help_record(ctx)
    if record is None:  # an argument without help
        record = (param.name.upper(), "")
    names, helptext = record
    kind = "argument" if param.param_type_name == "argument" else "option"
    return f"| `{_cell(names)}` | {kind} | {_cell(helptext)} |"


def render() -> str:
    import typer

    from value_lens.cli import app

    group = typer.main.get_command(app)
    gctx = group.make_context("value-lens", [], resilient_parsing=True)
    out = [_cell(group.help or "") + "\n"]
    for name in group.list_commands(gctx):
        cmd = group.get_command(gctx, name)
        ctx = cmd.make_context(name, [], parent=gctx, resilient_parsing=True)
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        out.append(f"## `value-lens {name}`\n")
        out.append((cmd.help or "").strip() + "\n")
        out.append(f"```text\nvalue-lens {name} {usage}\n```\n")
        rows = [r for r in (_param_row(p, ctx) for p in cmd.get_params(ctx)) if r]
        if rows:
            out.append("| Parameter | Kind | Help |\n|---|---|---|")
            out.extend(rows)
            out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # noqa: ARG001
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
