"""--test-to gets the plan's number checks: a number the dry run would refuse is never sent."""

from __future__ import annotations

import pytest
from hostile import campaign

from batchsms.cli.commands import main


@pytest.mark.parametrize(("number", "reason"), [
    ("+4590123456", "premium-rate number: cannot receive SMS"),
    ("+4580123456", "toll-free"),
    ("12", "not a valid number"),
])
def test_test_to_refuses_what_the_plan_refuses_and_sends_nothing(tmp_path, capsys, number,
                                                                  reason):
    path = campaign(tmp_path)
    reports = tmp_path / "r"
    code = main(["send", str(path), "--test-to", number, "--reports", str(reports)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--test-to {number!r}: " in err and reason in err and "nothing was sent" in err
    assert not reports.exists()  # no journal: no test message was even recorded
