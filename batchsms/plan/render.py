"""Rendering each recipient's text from the campaign's Jinja template.

Templates use ``<< var >>``, ``<% ... %>`` and ``<# ... #>`` so that ``{{ }}`` stays
literal. They run sandboxed and strict: a variable that is not a sheet column is a
campaign error; an empty cell is *missing* for that row, so using it skips the row
(``| default("...")`` or ``is defined`` make a variable optional). Every column is also
reachable as ``contact["Column name"]``, for headers that are not identifiers.

Templates that only substitute variables are rendered column-wise (string
concatenation over whole columns); any other template is rendered row by row by Jinja.
Either way the text is byte for byte what Jinja produces.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from batchsms.errors import CampaignError, located, not_utf8

CONTACT = "contact"

_ENV = SandboxedEnvironment(
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
    undefined=StrictUndefined,
    autoescape=False,
)


@dataclass(frozen=True)
class Part:
    """One piece of a substitution-only template: literal text or a column's value."""

    literal: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class Template:
    """A compiled campaign template and what it needs from the sheet."""

    origin: str  # the file (or "template.text in <campaign>") named in errors
    source: str
    columns: frozenset[str]  # the sheet columns the template reads
    parts: tuple[Part, ...] | None  # set when the template only substitutes variables
    lines: tuple[tuple[str, int], ...] = ()  # the line where each column is first used

    def check_columns(self, available: Iterable[str], sheet: object) -> None:
        """Raise a CampaignError for every variable that is not a column of ``sheet``."""
        have = list(available)
        problems = []
        for name in sorted(self.columns - set(have)):
            guess = difflib.get_close_matches(name, have, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"the columns are: {', '.join(have)}"
            line = dict(self.lines).get(name)
            problems.append(located(self.origin, f"line {line}" if line else None,
                                    f"the template uses '{name}', but {sheet} has no such column",
                                    f"Fix the name: {hint}"))
        if problems:
            raise CampaignError(problems)


def compile_template(source: str, origin: str) -> Template:
    """Parse ``source``; syntax errors become a CampaignError naming ``origin`` and the line."""
    try:
        tree = _ENV.parse(source)
        _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        raise CampaignError(located(origin, f"line {exc.lineno}", f"template syntax error: "
                                    f"{exc.message}", _syntax_hint(str(exc.message)))) from None
    names = meta.find_undeclared_variables(tree) - {CONTACT}
    keys = {node.arg.value for node in tree.find_all(nodes.Getitem)
            if _is_contact_item(node)}
    lines: dict[str, int] = {}
    for node in tree.find_all((nodes.Name, nodes.Getitem)):
        name = node.name if isinstance(node, nodes.Name) else (
            node.arg.value if _is_contact_item(node) else None)  # type: ignore[attr-defined]
        if name is not None:
            lines[name] = min(lines.get(name, node.lineno), node.lineno)
    return Template(origin, source, frozenset(names | keys), _substitution_parts(tree),
                    tuple(sorted(lines.items())))


def _syntax_hint(message: str) -> str:
    """A near name for a misspelt filter or test (``titel`` → ``title``), else the syntax."""
    unknown = re.search(r"No (filter|test) named '([^']+)'", message)
    if unknown:
        known = _ENV.filters if unknown[1] == "filter" else _ENV.tests
        guess = difflib.get_close_matches(unknown[2], list(known), n=1)
        if guess:
            return f"Did you mean '{guess[0]}'?"
        return f"Jinja's {unknown[1]}s include: {', '.join(sorted(known)[:12])}, ..."
    return "Variables are written << name >>, statements <% if x %>...<% endif %>"


def load_template(path: Path | None, text: str | None, campaign: Path | None) -> Template:
    """The campaign's template from ``template.path`` or ``template.text``."""
    if path is not None:
        try:
            return compile_template(path.read_text(encoding="utf-8-sig"), str(path))
        except UnicodeDecodeError as exc:
            raise CampaignError(not_utf8(path, exc)) from None
        except OSError as exc:
            raise CampaignError(located(path, None, f"cannot read the template: {exc}",
                                        "Save it as UTF-8 text")) from None
    assert text is not None
    return compile_template(text, f"{campaign}: template.text")


def _is_contact_item(node: nodes.Getitem) -> bool:
    return (isinstance(node.node, nodes.Name) and node.node.name == CONTACT
            and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str))


def _substitution_parts(tree: nodes.Template) -> tuple[Part, ...] | None:
    """The template as literal/column parts, or None if it does more than substitute."""
    parts: list[Part] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(Part(literal=node.data))
            elif isinstance(node, nodes.Name) and node.name != CONTACT:
                parts.append(Part(column=node.name))
            elif isinstance(node, nodes.Getitem) and _is_contact_item(node):
                parts.append(Part(column=node.arg.value))  # type: ignore[attr-defined]
            else:
                return None
    return tuple(parts)


def render_frame(template: Template, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Render every row of ``frame``: (texts, reasons), both indexed like ``frame``.

    A row whose template needs an empty cell, or whose rendering fails, has NA text and a
    reason; the others have NA reason.
    """
    if template.parts is not None:
        return _render_columns(template.parts, frame)
    return _render_rows(template, frame)


def _render_columns(parts: tuple[Part, ...], frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
    for column in dict.fromkeys(p.column for p in parts if p.column is not None):
        empty = frame[column].isna() & reasons.isna()
        reasons[empty] = f"empty cell in column '{column}'"
    if all(p.column is None for p in parts):
        constant = "".join(p.literal or "" for p in parts)
        return pd.Series(constant, index=frame.index, dtype="string"), reasons
    pieces = [pa.scalar(p.literal, pa.large_string()) if p.column is None
              else pc.cast(pa.array(frame[p.column]), pa.large_string()) for p in parts]
    joined = pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))
    text = pd.Series(pd.array(joined, dtype="string"), index=frame.index)
    text[reasons.notna()] = pd.NA
    return text, reasons


def _render_rows(template: Template, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    compiled = _ENV.from_string(template.source)
    columns = [c for c in frame.columns if isinstance(c, str)]
    texts: list[str | None] = []
    reasons: list[str | None] = []
    for values in frame[columns].itertuples(index=False, name=None):
        context = {c: v for c, v in zip(columns, values, strict=True) if not pd.isna(v)}
        text, reason = _render_one(compiled, context)
        texts.append(text)
        reasons.append(reason)
    return (pd.Series(texts, index=frame.index, dtype="string"),
            pd.Series(reasons, index=frame.index, dtype="string"))


def _render_one(compiled: object, context: dict[str, str]) -> tuple[str | None, str | None]:
    try:
        return compiled.render({**context, CONTACT: context}), None  # type: ignore[attr-defined]
    except UndefinedError as exc:
        return None, _undefined_reason(str(exc.message))
    except SecurityError as exc:
        return None, f"template not allowed: {exc}"
    except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
        return None, f"template error: {exc}"


def _undefined_reason(message: str) -> str:
    name = message.split("'")[1] if message.count("'") >= 2 else message
    if "has no attribute" in message or "no element" in message:
        parts = message.split("'")
        name = parts[-2] if len(parts) >= 3 else name
    return f"empty cell in column '{name}'"
