"""Control characters made visible, for a terminal or a spreadsheet cell (no heavy imports:
the command line uses it on every line it prints)."""

from __future__ import annotations

import re

# C0/C1 controls except tab and newline, and the bidirectional overrides that reorder text
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_controls(value: str) -> str:
    """``value`` with every control character written as ``<U+XXXX>``, for a terminal or an
    XLSX cell (tab and newline stay)."""
    return _CONTROLS.sub(lambda m: f"<U+{ord(m[0]):04X}>", value)


def has_controls(value: str) -> bool:
    """Whether :func:`escape_controls` would change ``value``."""
    return _CONTROLS.search(value) is not None
