"""Every limit batchsms puts on what a file or a template can make it do, in one place.

Each limit keeps a hostile or broken input (a device as the campaign file, a YAML alias
bomb, a zip bomb as the sheet, a template that loops) from hanging a run or eating the
machine's memory. Every one can be raised with an environment variable,
``BATCHSMS_<NAME>``, for the rare campaign that really needs more; the README's "Limits"
section lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from batchsms.errors import CampaignError


@dataclass(frozen=True)
class Limit:
    """One limit: its name (``BATCHSMS_<name>`` changes it), default and what it bounds."""

    name: str
    default: float
    what: str

    @property
    def variable(self) -> str:
        return f"BATCHSMS_{self.name}"

    def value(self, environ: Mapping[str, str] | None = None) -> float:
        """The limit in force: the environment variable if set, else the default."""
        raw = (os.environ if environ is None else environ).get(self.variable)
        if raw is None or not raw.strip():
            return self.default
        try:
            number = float(raw.replace("_", ""))
        except ValueError:
            number = -1.0
        if not number > 0 or number == float("inf"):
            raise CampaignError(f"{self.variable}={raw[:40]!r} is not a positive number: set "
                                f"it to the {self.what} you allow (default {self.default:g}) or "
                                "unset it")
        return number

    def int_value(self, environ: Mapping[str, str] | None = None) -> int:
        return int(self.value(environ))

    @property
    def fix(self) -> str:
        """How to change it, for the end of an error message."""
        return f"If this is intended, raise the limit with {self.variable}=<number>"


CAMPAIGN_BYTES = Limit("MAX_CAMPAIGN_BYTES", 1 << 20, "size of the campaign file in bytes")
YAML_DEPTH = Limit("MAX_YAML_DEPTH", 20, "nesting depth of the campaign YAML")
YAML_NODES = Limit("MAX_YAML_NODES", 10_000,
                   "number of YAML values once aliases (*name) are expanded")
TEMPLATE_BYTES = Limit("MAX_TEMPLATE_BYTES", 64 << 10, "size of the template file in bytes")
SIDE_FILE_BYTES = Limit("MAX_ENV_FILE_BYTES", 1 << 20, "size of provider.env_file in bytes")
XLSX_BYTES = Limit("MAX_XLSX_BYTES", 1 << 30,
                   "uncompressed size of an XLSX workbook in bytes")
XLSX_RATIO = Limit("MAX_XLSX_RATIO", 1000,
                   "compression ratio of one part of an XLSX workbook")
CELL_CHARS = Limit("MAX_CELL_CHARS", 100_000, "length of one sheet cell in characters")
TEXT_CHARS = Limit("MAX_TEXT_CHARS", 10_000, "length of one rendered text in characters")
VALUE_CHARS = Limit("MAX_VALUE_CHARS", 1_000_000,
                    "size of any string, list or width a template builds along the way")
RENDER_SECONDS = Limit("MAX_RENDER_SECONDS", 2.0, "seconds one row's rendering may take")

ALL = (CAMPAIGN_BYTES, YAML_DEPTH, YAML_NODES, TEMPLATE_BYTES, SIDE_FILE_BYTES, XLSX_BYTES,
       XLSX_RATIO, CELL_CHARS, TEXT_CHARS, VALUE_CHARS, RENDER_SECONDS)
