"""Helpers for the hostile-input tests: run the real CLI in a child process that cannot hang
or eat the machine (a memory cap and a time limit), and build campaign folders."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MEMORY_CAP = 3 << 30  # address space: far below what the old hangs reached (4 GB and more)
TIME_LIMIT = 60  # seconds: a generous bound for a slow CI machine; each case takes ~1-3 s

YAML = """\
name: hostile
contacts:
  path: {sheet}
  default_region: DK
template:
  {template}
provider:
  name: mailjet
  sender: Shop
  sandbox: true
pricing:
  currency: EUR
  default: 0.05
"""

SHEET = "phone,name\n+4520123456,Ann\n+4520123457,Bob\n"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(*argv: str | Path, cwd: Path | None = None,
               env: dict[str, str] | None = None, timeout: float = TIME_LIMIT) -> Run:
    """``batchsms ARGV`` in a child process under the memory cap; fails the test on a hang."""
    code = "import sys; from batchsms.cli.commands import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=_cap,
                          env={**os.environ, **(env or {})}, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def campaign(folder: Path, sheet: str | bytes = SHEET, template: str = 'text: "Hi << name >>"',
             sheet_name: str = "contacts.csv", extra: str = "") -> Path:
    """Write a sandbox campaign (YAML + sheet) into ``folder``; returns the YAML's path."""
    data = sheet.encode("utf-8") if isinstance(sheet, str) else sheet
    (folder / sheet_name).write_bytes(data)
    path = folder / "campaign.yaml"
    path.write_text(YAML.format(sheet=sheet_name, template=template) + extra, encoding="utf-8")
    return path
