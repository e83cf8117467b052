"""Rendering each recipient's text from the campaign's Jinja template.

Templates use ``<< var >>``, ``<% ... %>`` and ``<# ... #>`` so that ``{{ }}`` stays
literal. They run sandboxed and strict: a variable that is not a sheet column is a
campaign error; an empty cell is *missing* for that row, so using it skips the row
(``| default("...")`` or ``is defined`` make a variable optional). Every column is also
reachable as ``contact["Column name"]``, for headers that are not identifiers.

A template can only read values: ``<< >>`` prints one value (a cell, a number), never a
row or another object (``<< contact >>`` is an error, not the row as a dict); it cannot
include, import or extend other files; and what it may cost is bounded (see
``batchsms.limits``): no operation may build a string, list or number far beyond any
text's size (``'a' * 10**10``, ``7 ** 7 ** 10``, ``center(10**9)`` are refused, and none
is folded when the template compiles), one row's render stops after
``MAX_RENDER_SECONDS`` (loops, recursion), and a text stops at ``MAX_TEXT_CHARS``. A
template that fails for every row of the sheet is a campaign error, not a run in which
every row is skipped.

Templates that only substitute variables are rendered column-wise (string
concatenation over whole columns); any other template is rendered row by row by Jinja.
Either way the text is byte for byte what Jinja produces.
"""

from __future__ import annotations

import difflib
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from jinja2 import TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError

from batchsms import limits
from batchsms.errors import CampaignError, located, not_utf8
from batchsms.plan.sandbox import ENV, Budget, Row, Timeout, alarm

_ENV = ENV  # the name tests and older callers use
CONTACT = "contact"
_TEMPLATE_FILE = "<template>"


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
    if len(source) > limits.TEMPLATE_BYTES.int_value():
        raise CampaignError(located(origin, None, "the template is longer than "
                                    f"{limits.TEMPLATE_BYTES.int_value():,} characters",
                                    limits.TEMPLATE_BYTES.fix))
    try:
        tree = _ENV.parse(source)
        _refuse_other_files(tree, origin)
        _ENV.from_string(tree)
    except TemplateSyntaxError as exc:
        raise CampaignError(located(origin, f"line {exc.lineno}", f"template syntax error: "
                                    f"{exc.message}", _syntax_hint(str(exc.message)))) from None
    except (RecursionError, MemoryError):
        raise CampaignError(located(origin, None, "the template is nested too deeply to read",
                                    "Simplify it")) from None
    except TemplateError as exc:
        raise CampaignError(located(origin, None, f"template error: {exc}")) from None
    names = meta.find_undeclared_variables(tree) - {CONTACT}
    keys = {node.arg.value for node in tree.find_all(nodes.Getitem)
            if _is_contact_item(node)}
    lines: dict[str, int] = {}
    for node in tree.find_all((nodes.Name, nodes.Getitem)):
        name = node.name if isinstance(node, nodes.Name) else (
            node.arg.value if _is_contact_item(node) else None)  # type: ignore[attr-defined]
        if name is not None:
            lines[name] = min(lines.get(name, node.lineno), node.lineno)
    return Template(origin, source, frozenset(names | keys), _substitution_parts(tree, names),
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


def _refuse_other_files(tree: nodes.Template, origin: str) -> None:
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        raise CampaignError(located(origin, f"line {node.lineno}", "a template cannot include, "
                                    "import or extend other files", "Put the whole message "
                                    "in this one template"))


def load_template(path: Path | None, text: str | None, campaign: Path | None) -> Template:
    """The campaign's template from ``template.path`` or ``template.text``."""
    from batchsms.plan.campaign import read_small_file

    if path is not None:
        try:
            data = read_small_file(path, limits.TEMPLATE_BYTES, "the template")
            return compile_template(data.decode("utf-8-sig"), str(path))
        except UnicodeDecodeError as exc:
            raise CampaignError(not_utf8(path, exc)) from None
        except OSError as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise CampaignError(located(path, None, f"cannot read the template: {reason}",
                                        "Save it as UTF-8 text")) from None
    assert text is not None
    return compile_template(text, f"{campaign}: template.text")


def _is_contact_item(node: nodes.Getitem) -> bool:
    return (isinstance(node.node, nodes.Name) and node.node.name == CONTACT
            and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str))


def _substitution_parts(tree: nodes.Template, names: set[str]) -> tuple[Part, ...] | None:
    """The template as literal/column parts, or None if it does more than substitute.

    ``names`` are the sheet columns it reads; any other name (``range``) is Jinja's.
    """
    parts: list[Part] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(Part(literal=node.data))
            elif isinstance(node, nodes.Name) and node.name in names:
                parts.append(Part(column=node.name))
            elif isinstance(node, nodes.Getitem) and _is_contact_item(node):
                parts.append(Part(column=node.arg.value))  # type: ignore[attr-defined]
            else:
                return None
    return tuple(parts)


def render_frame(template: Template, frame: pd.DataFrame,
                 todo: np.ndarray | None = None) -> tuple[pd.Series, pd.Series]:
    """Render the rows of ``frame`` chosen by the boolean mask ``todo`` (default: every
    row): (texts, reasons), both indexed like ``frame``; the other rows get NA for both.

    A row whose template needs an empty cell, or whose rendering fails, has NA text and a
    reason; the others have NA reason. Raises CampaignError when the template fails (other
    than for an empty cell) for every chosen row: that is a broken template, not a sheet
    of bad rows.
    """
    todo = np.ones(len(frame), dtype=bool) if todo is None else todo
    if template.parts is not None:
        texts, reasons = _render_columns(template.parts, frame, todo)
    elif todo.all():
        texts, reasons = _render_rows(template, frame)
    else:
        texts, reasons = _render_rows(template, frame[todo])
        texts, reasons = _spread(texts, todo, frame.index), _spread(reasons, todo, frame.index)
    _refuse_if_every_row_fails(template, reasons, todo)
    return texts, reasons


def _spread(values: pd.Series, where: np.ndarray, index: pd.Index) -> pd.Series:
    """A string column over ``index`` holding ``values`` at the rows of ``where``, NA
    elsewhere (by position: a reindex would hash the index)."""
    at = np.full(len(index), -1, np.int64)
    at[where] = np.arange(len(values))
    taken = pa.array(values.array, pa.large_string()).take(pa.array(at, mask=at < 0))
    return pd.Series(pd.array(taken, dtype="string"), index=index)


def _refuse_if_every_row_fails(template: Template, reasons: pd.Series, todo: np.ndarray) -> None:
    if not todo.any() or (todo & reasons.isna().to_numpy()).any():
        return
    chosen = reasons[todo]
    failed = ~chosen.str.startswith("empty cell")
    if failed.all():
        first = chosen.index[0]
        raise CampaignError(located(template.origin, None, f"the template fails for every row "
                                    f"(row {first}: {chosen.iloc[0]})", "Fix the template; "
                                    "batchsms preview shows what it renders"))


def _render_columns(parts: tuple[Part, ...], frame: pd.DataFrame,
                    todo: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """Whole columns joined, every row of ``frame`` at once (filtering the chosen rows first
    and spreading their texts back costs more than joining the rest), then the rows that
    are not chosen or have a reason made NA through the validity bitmap alone."""
    reasons = pd.Series(pd.array(pa.nulls(len(frame), pa.large_string()), dtype="string"),
                        index=frame.index)
    pending = todo.copy()  # chosen rows without a reason yet
    for column in dict.fromkeys(p.column for p in parts if p.column is not None):
        empty = pending & frame[column].isna().to_numpy()
        if empty.any():
            reasons[empty] = f"empty cell in column '{column}'"
            pending &= ~empty
    if all(p.column is None for p in parts):
        constant = "".join(p.literal or "" for p in parts)
        joined = pa.repeat(pa.scalar(constant, pa.large_string()), len(frame))
    else:
        pieces = [pa.scalar(p.literal, pa.large_string()) if p.column is None
                  else pc.cast(pa.array(frame[p.column]), pa.large_string()) for p in parts]
        joined = pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))
    most = limits.TEXT_CHARS.int_value()
    # A text has at most as many characters as bytes: count characters only when needed.
    if (pc.max(pc.binary_length(joined)).as_py() or 0) > most:
        long = pending & pc.fill_null(pc.greater(pc.utf8_length(joined), most),
                                      False).to_numpy(zero_copy_only=False)
        if long.any():
            reasons[long] = _too_long_reason(most)
            pending &= ~long
    return pd.Series(pd.array(_only(joined, pending), dtype="string"), index=frame.index), reasons


def _only(texts: pa.LargeStringArray, keep: np.ndarray) -> pa.LargeStringArray:
    """``texts`` with every row outside ``keep`` null (rows inside it must be valid): the
    same data and offsets under a new validity bitmap, nothing copied."""
    if keep.all():
        return texts
    if texts.offset:  # never for a fresh join; the general way then
        return pc.if_else(pa.array(keep), texts, pa.scalar(None, pa.large_string()))
    validity = pa.array(keep).buffers()[1]
    return pa.LargeStringArray.from_buffers(len(texts), texts.buffers()[1], texts.buffers()[2],
                                            validity)


def _too_long_reason(most: int) -> str:
    return (f"template error: the text is longer than {most:,} characters "
            f"({limits.TEXT_CHARS.variable} is the limit)")


def _render_rows(template: Template, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    compiled = _ENV.from_string(template.source)
    columns = [c for c in frame.columns if isinstance(c, str)]
    texts: list[str | None] = []
    reasons: list[str | None] = []
    budget = Budget(limits.TEXT_CHARS.int_value(), limits.RENDER_SECONDS.value())
    with alarm(budget):
        rows = frame[columns].itertuples(index=False, name=None)
        for row, values in zip(frame.index, rows, strict=True):
            context = {c: v for c, v in zip(columns, values, strict=True) if not pd.isna(v)}
            try:
                text, reason = _render_one(compiled, context, budget)
            except (Timeout, MemoryError) as exc:
                raise _runaway(template, row, exc, budget) from None
            texts.append(text)
            reasons.append(reason)
    return (pd.Series(texts, index=frame.index, dtype="string"),
            pd.Series(reasons, index=frame.index, dtype="string"))


def _render_one(compiled: Any, context: dict[str, str],
                budget: Budget) -> tuple[str | None, str | None]:
    try:
        if budget.timed:
            budget.armed = True
            signal.setitimer(signal.ITIMER_REAL, budget.seconds)
        return _generate(compiled, {**context, CONTACT: Row(context)}, budget.chars), None
    except UndefinedError as exc:
        return None, _undefined_reason(str(exc.message))
    except SecurityError as exc:
        return None, f"template not allowed{_line(exc)}: {exc}"
    except RecursionError as exc:
        return None, f"template error{_line(exc)}: it calls itself too deeply"
    except _TooLong:
        return None, _too_long_reason(budget.chars)
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        return None, f"template error{_line(exc)}: {exc}"
    finally:
        if budget.timed:
            budget.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)


def _runaway(template: Template, row: object, exc: BaseException,
             budget: Budget) -> CampaignError:
    """A render that loops or eats memory is the template's fault, whatever the row."""
    line = _line(exc).removeprefix(" at ") or None
    what = (f"rendering row {row} took more than {budget.seconds:g} s"
            if isinstance(exc, Timeout) else f"rendering row {row} needed too much memory")
    return CampaignError(located(template.origin, line, f"{what}: the template may loop or "
                                 "recurse without end", "Fix the loop; "
                                 f"{limits.RENDER_SECONDS.variable} raises the time limit"))


class _TooLong(Exception):
    pass


def _generate(compiled: Any, context: dict[str, Any], most: int) -> str:
    pieces: list[str] = []
    size = 0
    for piece in compiled.generate(context):
        size += len(piece)
        if size > most:
            raise _TooLong
        pieces.append(piece)
    return "".join(pieces)


def _line(exc: BaseException) -> str:
    """" at line N" for the innermost template line in ``exc``'s traceback, if any."""
    line = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


def _undefined_reason(message: str) -> str:
    name = message.split("'")[1] if message.count("'") >= 2 else message
    if "has no attribute" in message or "no element" in message:
        parts = message.split("'")
        name = parts[-2] if len(parts) >= 3 else name
    return f"empty cell in column '{name}'"
