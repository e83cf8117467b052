from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def campaign_dir(tmp_path: Path):
    """Write a small working campaign into tmp_path; returns a function to (re)write parts."""

    def write(*, yaml: str | None = None, sheet: str | None = None,
              template: str | None = None, sheet_name: str = "contacts.csv") -> Path:
        if sheet is not None:
            (tmp_path / sheet_name).write_text(sheet, encoding="utf-8")
        if template is not None:
            (tmp_path / "template.txt").write_text(template, encoding="utf-8")
        path = tmp_path / "campaign.yaml"
        if yaml is not None:
            path.write_text(yaml, encoding="utf-8")
        return path

    return write
