"""``batchsms emulator`` as a person runs it: a busy port, and what it leaves behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from batchsms.cli.commands import main


def test_a_busy_port_is_a_clear_error_before_any_banner(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(["emulator", "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "export" not in out  # no credentials printed for a server that never ran


def test_the_throwaway_key_is_removed_when_the_emulator_stops(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "batchsms", "emulator", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        key = None
        deadline = time.monotonic() + 60  # a hang guard, not a timing
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            found = re.search(r"VOXIMPLANT_CREDENTIALS=(\S+)", line)
            key = Path(found[1]) if found else None
        assert key is not None and key.is_file()
        served = None
        while served is None and time.monotonic() < deadline:  # it answers HTTP
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/mailjet/__emulator/records", timeout=5) as r:
                    served = r.status
            except OSError:
                time.sleep(0.1)
        assert served == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # stopped by Ctrl-C, as every command
        assert not key.exists() and not key.parent.exists()
    finally:
        proc.kill()
        proc.communicate()  # reaps it and closes its pipe
