"""MkDocs hooks of the keras-vpg site.

* ``<!-- cli-reference -->`` in a page is replaced by the reference of every
  ``keras-vpg`` subcommand and flag, generated from the argparse parser itself
  (:func:`keras_vpg.cli.build_parser`), so the page cannot drift from the command.
* Math written as ``$...$`` / ``$$...$$`` (kept intact by pymdownx.arithmatex) is
  converted to MathML at build time with latex2mathml: the pages need no
  JavaScript and no network to show equations.
"""

from __future__ import annotations

import argparse
import html
import re

MARKER = "<!-- cli-reference -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        choices = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        choices = action.metavar or action.dest.upper()
    if action.nargs == "+":
        return f"{choices} [...]"
    if action.nargs == "*":
        return f"[{choices} ...]"
    if action.nargs == "?":
        return f"[{choices}]"
    if action.nargs == argparse.REMAINDER:
        return "..."
    return str(choices)


def _default(action: argparse.Action) -> str:
    default = action.default
    if default is None or default is False or default == argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(default, (list, tuple)):
        default = " ".join(str(v) for v in default)
    return f"`{default}`" if str(default) != "" else '`""`'


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:
        params = dict(vars(action), prog=prog)
        text = text % params
    return html.escape(text, quote=False)


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | value | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:  # argparse has no public iterator over its actions
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(action.option_strings) or action.dest
        rows.append(f"| `{name}` | {_cell(f'`{_value(action)}`' if _value(action) else '')} | "
                    f"{_cell(_default(action))} | {_cell(_help(action, parser.prog))} |")
    return rows


def cli_reference_markdown() -> str:
    """The reference of ``keras-vpg`` and each subcommand, as Markdown."""
    from keras_vpg import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["```text", parser.format_usage().strip(), "```", "", *_options_table(parser), ""]
    lines.append("| command | what it does |")
    lines.append("|---|---|")
    summaries = {choice.dest: choice.help for choice in subparsers._choices_actions}
    for name in subparsers.choices:
        lines.append(f"| [`{name}`](#{name}) | {_cell(summaries.get(name) or '')} |")
    lines.append("")
    for name, sub in subparsers.choices.items():
        lines += [f"## {name}", "", html.escape(sub.description or "", quote=False), "",
                  "```text", sub.format_usage().strip(), "```", ""]
        lines += _options_table(sub)
        if sub.epilog:
            lines += ["", "```text", sub.epilog.strip(), "```"]
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference_markdown())
    return markdown


_MATH = re.compile(
    r'<(div|span) class="arithmatex">(?:\\\[|\\\()(.*?)(?:\\\]|\\\))</\1>', flags=re.S)


def on_page_content(content: str, page, config, files) -> str:
    if 'class="arithmatex"' not in content:
        return content
    from latex2mathml.converter import convert

    def mathml(match: re.Match) -> str:
        tag, latex = match.group(1), html.unescape(match.group(2))
        display = "block" if tag == "div" else "inline"
        return convert(latex.strip(), display=display)

    return _MATH.sub(mathml, content)
