"""dry-run.csv, written on a background thread: in sheet order, complete or not at all."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from helpers.campaigns import YAML
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.plan.campaign import load_campaign
from batchsms.plan.planner import Planner
from batchsms.report.csvfile import DryRunCsv, neutralise

NOW = 1_795_000_000.0  # one injected instant: the files carry send times


def write_csv(path, out, chunk_rows: int, fail_after: int | None = None) -> None:
    planner = Planner(load_campaign(path), chunk_rows=chunk_rows, now=NOW)
    with DryRunCsv(out, planner.prices) as csv:
        for n, chunk in enumerate(planner.chunks()):
            if n == fail_after:
                raise RuntimeError("stopped half way")
            csv.write(chunk.plan)


def campaign(campaign_dir):
    rows = "".join(f"+45 20 1{i % 10} 34 {10 + i % 90},=N{i},x\n" for i in range(300))
    return campaign_dir(yaml=YAML.format(provider="mailjet", sender="Shop", extra=""),
                        sheet="phone,name,city\n" + rows, template="<< name >>, hi")


def test_many_chunks_make_the_same_file_as_one(campaign_dir, tmp_path):
    path = campaign(campaign_dir)
    write_csv(path, tmp_path / "one.csv", 10_000)
    write_csv(path, tmp_path / "many.csv", 7)
    one = (tmp_path / "one.csv").read_text(encoding="utf-8")
    assert one.count("\n") == 301 and "\"'=N5, hi\"" in one  # every row, neutralised
    assert (tmp_path / "many.csv").read_text(encoding="utf-8") == one
    assert not list(tmp_path.glob(".*.partial"))


def test_a_failure_half_way_leaves_no_file(campaign_dir, tmp_path):
    path = campaign(campaign_dir)
    with pytest.raises(RuntimeError, match="half way"):
        write_csv(path, tmp_path / "out.csv", 7, fail_after=5)
    assert not (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_a_write_error_surfaces_in_the_caller(campaign_dir, tmp_path):
    path = campaign(campaign_dir)
    planner = Planner(load_campaign(path), chunk_rows=50)
    chunk = next(planner.chunks())
    with pytest.raises(KeyError), DryRunCsv(tmp_path / "out.csv", planner.prices) as csv:
        csv.write(chunk.plan)
        csv.write(chunk.plan.drop(columns="text"))  # fails on the caller's thread
        csv.write(chunk.plan)
    assert not (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob(".*.partial"))


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(st.one_of(st.none(), st.text(st.sampled_from("=+-@\t\r 1.2aé'"),
                                                   max_size=6)), max_size=12),
       large=st.booleans(), split=st.integers(0, 12))
def test_neutralise_equals_the_rule_cell_by_cell(cells, large, split):
    """A cell gets an apostrophe when it starts with = + - @ tab or CR and is not a plain
    number; NA stays NA; string or large_string, one chunk or several."""
    kind = pa.large_string() if large else pa.string()
    column = pa.chunked_array([pa.array(cells[:split], kind), pa.array(cells[split:], kind)],
                              kind)
    found = neutralise(column).to_pylist()
    expected = [None if c is None else "'" + c if re.match(r"[=+\-@\t\r]", c) and not
                re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", c) else c for c in cells]
    assert found == expected
