"""The mark a report folder carries while its results files are older than its journal.

Results are rewritten from the journal after every send and ``track``. The mark is
written before that starts and removed once every file is written, so a run stopped in
between (a second Ctrl-C, a kill, a full disk) leaves it behind: the folder then says, to
a person and to ``batchsms status``, that its results files are stale and which command
rewrites them. The journal itself is always current. No heavy imports: ``status`` reads it.
Files are written under a partial name and replace the old ones whole.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

MARK = "results-stale.txt"
_TEXT = """\
The results files in this folder (results.csv, results.xlsx, summary.json, retry.xlsx,
retry.csv, report.html) may be older than the campaign's journal (journal.sqlite): the
last run stopped before it had rewritten them. Nothing was lost: the journal records every
message.

To rewrite them, run the same `batchsms send` command again (it resumes, and rewrites the
results even when nothing is left to send), or `batchsms track` for the campaign.
"""


def mark_stale(folder: Path) -> None:
    """Mark ``folder``'s results as stale (before rewriting them). A folder that cannot be
    written is left as it is: writing the results will say why."""
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARK).write_text(_TEXT, encoding="utf-8")


def clear_stale(folder: Path) -> None:
    """The results are current again."""
    with contextlib.suppress(OSError):
        (folder / MARK).unlink(missing_ok=True)


def is_stale(folder: Path) -> bool:
    return (folder / MARK).is_file()


def partial_of(path: Path) -> Path:
    """Where ``path`` is written before it replaces the old one whole: a hidden name of
    this process's own, so that two runs writing one folder never share a half file."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_whole(path: Path, text: str) -> None:
    """Write ``path`` so that a reader never sees half of it."""
    partial = partial_of(path)
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def drop_partial_files(folder: Path) -> None:
    """Remove this process's half-written results files (a run stopped at once)."""
    for partial in folder.glob(f".*.{os.getpid()}.partial"):
        with contextlib.suppress(OSError):
            partial.unlink()


def drop_orphans(folder: Path, older_than: float = 600.0) -> None:
    """Remove half-written files that a killed run left behind (named by its PID, so the
    next run's do not replace them): any not touched for ``older_than`` seconds. Writing
    the results of even a million rows touches its file every few seconds."""
    now = time.time()
    for partial in folder.glob(".*.partial"):
        with contextlib.suppress(OSError):
            if now - partial.stat().st_mtime > older_than:
                partial.unlink()
