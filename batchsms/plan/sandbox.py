"""The sandbox campaign templates run in: Jinja's, with every way to grow a value checked.

A template can only read values. ``<< >>`` prints one value (a cell, a number), never a row
(:class:`Row` refuses to become text) or another object. Operators, filters, string methods
and ``~`` that could build a string, list or number far beyond any text are refused before
they run (``'a' * 10**10``, ``7 ** 7 ** 10``, ``center(10**9)``, ``'%9999999d'``), and the
intercepted operators are never folded when a template compiles, so ``check`` cannot hang.
:func:`alarm` and :class:`Budget` bound the time one row's render may take (SIGALRM, main
thread only). The limits are in ``batchsms.limits``.
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from batchsms import limits

_MAX_BITS = 100_000  # ~30,000 digits: far more than any text can show
# a width or precision of a million or more in a %-format or a {}-format string
_WIDE = re.compile(r"%[-+ #0]*(\d{7,}|\.\d{7,})|\{[^{}]*:[^{}]*\d{7,}")


class Refused(SecurityError):
    """An operation that would build something far larger than any text."""


class Timeout(Exception):
    """One row's render ran past MAX_RENDER_SECONDS."""


def _too_big(value: object) -> bool:
    most = limits.VALUE_CHARS.int_value()
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > most
    return isinstance(value, str | list | tuple) and len(value) > most


def _refuse_big(*values: object) -> None:
    for value in values:
        if _too_big(value):
            raise Refused(f"the template builds a value over {limits.VALUE_CHARS.default:,.0f} "
                          "characters or a width that large")


def _refuse_wide(form: object) -> None:
    if isinstance(form, str) and _WIDE.search(form):
        raise Refused("the template formats a value a million or more characters wide")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if abs(left) > 1 and right * abs(left).bit_length() > _MAX_BITS:
            raise Refused(f"{left} ** {right} is a number too large to show")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if abs(left).bit_length() + abs(right).bit_length() > _MAX_BITS:
                raise Refused("the template multiplies numbers too large to show")
        elif isinstance(left, int | str | list | tuple) and isinstance(right, int | str | list |
                                                                      tuple):
            size = _length(left) * _length(right)
            if size > limits.VALUE_CHARS.int_value():
                raise Refused(f"the template repeats a value to {size:,} characters or items")
    elif operator == "+":
        if _length(left) + _length(right) > limits.VALUE_CHARS.int_value():
            raise Refused("the template joins values into more than "
                          f"{limits.VALUE_CHARS.default:,.0f} characters")
    elif operator == "%" and isinstance(left, str):
        _refuse_wide(left)
        _refuse_big(*(right if isinstance(right, tuple) else (right,)))


def _length(value: object) -> int:
    if isinstance(value, str | list | tuple):
        return len(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _checked_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    passes_context = getattr(function, "jinja_pass_arg", None) is not None

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        value, *params = args[1:] if passes_context else args
        _refuse_big(*params, *kwargs.values())
        if function.__name__ == "do_replace" and len(params) >= 2:
            _check_replace(value, params[1])
        if function.__name__ == "do_format":
            _refuse_wide(value)
        return function(*args, **kwargs)

    return checked


def _check_replace(text: object, new: object) -> None:
    if isinstance(text, str) and isinstance(new, str) and \
            (len(text) + 1) * len(new) > limits.VALUE_CHARS.int_value():
        raise Refused("the template's replace would build too long a text")


def _one_value(value: object) -> object:
    """What ``<< >>`` may print: one value, never a row, a list or any other object."""
    if isinstance(value, str | int | float | Decimal | Undefined):
        return value
    if isinstance(value, Row):
        str(value)
    raise TemplateError(f"<< >> must give one value (a cell, a number), not a "
                        f"{type(value).__name__}: name a column, e.g. << first_name >>")


class Row(Mapping[str, str]):
    """``contact``: the row's cells by column name; never printable as a whole."""

    __slots__ = ("_cells",)

    def __init__(self, cells: dict[str, str]) -> None:
        self._cells = cells

    def __getitem__(self, key: str) -> str:
        return self._cells[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def __str__(self) -> str:
        raise TemplateError("'contact' is the whole row, not one cell: write "
                            "contact[\"Column name\"] or the column's name")

    __repr__ = __str__


class _Generator(CodeGenerator):
    """Jinja's code generator, with ``~`` (string joining) size-checked at run time."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with every operation that can grow a value checked before it runs.

    Intercepted operators are also never folded at compile time, so ``check`` cannot hang.
    """

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        for name in ("pprint", "tojson", "xmlattr"):
            self.filters.pop(name, None)
        self.filters = {name: _checked_filter(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse_big(*args, *kwargs.values())
        if getattr(__obj, "__name__", None) == "replace" and len(args) >= 2:
            _check_replace(getattr(__obj, "__self__", None), args[1])
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        form = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _refuse_wide(form)
            _refuse_big(*args, *kwargs.values())
            return wrapped(*args, **kwargs)

        return checked

    @staticmethod
    def checked_join(parts: tuple[Any, ...]) -> str:
        text = "".join(map(str, parts))
        if len(text) > limits.VALUE_CHARS.int_value():
            raise Refused("the template joins values into more than "
                          f"{limits.VALUE_CHARS.default:,.0f} characters")
        return text


ENV = _Sandbox(
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
    undefined=StrictUndefined,
    autoescape=False,
    finalize=_one_value,
)


@dataclass
class Budget:
    chars: int
    seconds: float
    armed: bool = False
    timed: bool = False  # the SIGALRM handler is installed (main thread only)


@contextmanager
def alarm(budget: Budget) -> Iterator[None]:
    """SIGALRM stops a row's render that runs too long (loops, recursion).

    Signals reach only the main thread; elsewhere (a library user's worker thread) the
    size checks still hold but a render is not timed.
    """
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer"):
        yield
        return

    def ring(signum: int, frame: object) -> None:
        if budget.armed:
            budget.armed = False
            raise Timeout

    previous = signal.signal(signal.SIGALRM, ring)
    budget.timed = True
    try:
        yield
    finally:
        budget.armed = budget.timed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
