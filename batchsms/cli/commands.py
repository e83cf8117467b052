"""The command line: parse flags, call one library function, print, return an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from batchsms import __version__
from batchsms.cli.summary import campaign_warnings, track_text, waiting_text
from batchsms.display import plural
from batchsms.errors import BatchsmsError, BatchsmsWarning, CampaignError, ExitCode
from batchsms.report.escape import escape_controls

# Each command imports what it needs (pandas, pyarrow, pydantic, jinja2, httpx…) inside its
# function, so that --help, a mistyped flag and a light command start in a few tens of ms.


def _writable_folder(ctx: click.Context, param: click.Parameter,
                     value: Path | None) -> Path | None:
    """A folder batchsms can create files in (later), checked before any work is done."""
    from batchsms.plan.campaign import folder_problem

    problem = None if value is None else folder_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


CAMPAIGN = click.argument("campaign", type=click.Path(path_type=Path))
REPORTS = click.option("--reports", type=click.Path(file_okay=False, path_type=Path),
                       default=None, callback=_writable_folder,
                       help="Folder for the report files and the journal (one sub-folder "
                       "per campaign); default: the campaign's reports: key, relative to the "
                       "campaign file (reports/ beside it).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchsms")
def cli() -> None:
    """Send SMS campaigns from a YAML file, a contact sheet and a template.

    Start with `batchsms dry-run CAMPAIGN.yaml`: it shows every recipient's text,
    segments and cost without sending anything.
    """


@cli.command("check")
@CAMPAIGN
@JSON
def check_command(campaign: Path, as_json: bool) -> int:
    """Validate a campaign, its sheet and its template; send nothing.

    Lists every problem with its file, row or YAML key, and everything send would stop
    on before its first request: over the budget, nothing to send, credentials missing or
    unusable (checked without sending). Exits 0 when send can start (skipped rows are
    listed, not fatal), 2 when it cannot.

    Example: batchsms check campaigns/spring-sale.yaml
    """
    from batchsms.cli.summary import dry_run_text
    from batchsms.report.dryrun import check

    result = check(campaign)
    warnings = campaign_warnings(result.campaign)
    if as_json:
        _print_json({**result.totals.to_dict(), "warnings": warnings,
                     "ready": not result.problems, "problems": list(result.problems)})
    else:
        _echo(dry_run_text(result, title="check failed" if result.problems
                           else "check passed"))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.problems:
        _echo(_error_text(CampaignError(list(result.problems))), err=True)
        return ExitCode.UNUSABLE
    return ExitCode.OK


@cli.command("dry-run")
@CAMPAIGN
@JSON
@REPORTS
def dry_run_command(campaign: Path, as_json: bool, reports: Path) -> int:
    """Everything send would do, except sending: texts, segments and cost per recipient.

    Writes REPORTS/<name>/dry-run.csv (one row per sheet row) and prints the totals by
    country and encoding, and the skipped rows grouped by reason.

    Example: batchsms dry-run campaigns/spring-sale.yaml --json
    """
    from batchsms.cli.summary import dry_run_text
    from batchsms.report.dryrun import dry_run

    result = dry_run(campaign, reports)
    if as_json:
        _print_json({**result.totals.to_dict(), "campaign": result.campaign.name,
                     "provider": result.campaign.provider.name,
                     "report": str(result.csv_path)})
    else:
        _echo(dry_run_text(result))
    return ExitCode.OK


@cli.command("send")
@CAMPAIGN
@click.option("--yes", is_flag=True, help="Send without asking for confirmation.")
@click.option("--accept-changes", is_flag=True,
              help="Resume although the campaign, sheet or template changed since the first "
              "send (recipients already messaged are never messaged again).")
@click.option("--resend-unknown", is_flag=True,
              help="Resend the messages whose outcome is unknown (they may arrive twice).")
@click.option("--test-to", metavar="NUMBER",
              help="Send one test message to NUMBER only (the text of --row, default the "
              "first sendable row); it never counts as that row's message.")
@click.option("--row", "test_row", type=int, metavar="N",
              help="With --test-to: the sheet row whose text to send.")
@click.option("--message-everyone-again", "message_again", is_flag=True,
              help="Start a second journal although this campaign already has one for this "
              "account elsewhere: every recipient is messaged again.")
@click.option("--same-account", is_flag=True,
              help="The credentials changed but the provider account is the same (a new "
              "key): what went out through the old key still counts.")
@click.option("--wait", is_flag=True,
              help="Keep running until every recipient is sent: sleep until the next window "
              "opens (send.window, send.not_before, send_at_column) instead of exiting.")
@REPORTS
def send_command(campaign: Path, yes: bool, accept_changes: bool, resend_unknown: bool,
                 test_to: str | None, test_row: int | None, message_again: bool,
                 same_account: bool, wait: bool, reports: Path) -> int:
    """Send the campaign, or resume it where an earlier run stopped.

    Shows the dry-run totals and asks for confirmation (or takes --yes); sends in
    chunks within the provider's rate; journals every step so that a crash or Ctrl-C
    never loses or duplicates a message; writes results.csv, results.xlsx,
    summary.json and retry.csv to REPORTS/<name>/. Recipients whose window is shut
    stay pending: without --wait it exits 0 and says when the next window opens.

    Example: batchsms send campaigns/spring-sale.yaml --yes
    """
    if test_to is not None:
        return _test_send(campaign, test_to, test_row, reports)
    if test_row is not None:
        raise click.UsageError("--row goes with --test-to")
    from batchsms.cli.summary import send_preamble
    from batchsms.send.sending import prepare_send

    prepared = prepare_send(campaign, reports, accept_changes=accept_changes,
                            resend_unknown=resend_unknown, message_again=message_again,
                            same_account=same_account)
    _echo(send_preamble(prepared))
    left = prepared.to_do()
    if left["to_send"] + left["to_look_up"] == 0:
        _echo("Nothing left to send.")
        return _finish(prepared, None)
    if not yes and not _confirmed(prepared, left["to_send"]):
        return ExitCode.OK  # the person said no: nothing went wrong
    from batchsms.report.stale import mark_stale

    mark_stale(prepared.folder)  # from the first message on, until the results catch up
    try:
        result = _run(prepared, wait)
    except BaseException:
        prepared.close()  # let the next run take the campaign's lock (library callers too)
        raise
    return _finish(prepared, result)


def _test_send(campaign: Path, to: str, row: int | None, reports: Path) -> int:
    import asyncio

    from batchsms.send.sending import send_test

    test = asyncio.run(send_test(campaign, to, row, reports))
    r = test.result
    _echo(f"Test send of row {test.row} to {test.to}: {r.outcome}"
               + (f" (message id {r.message_id})" if r.message_id else "")
               + (f": {r.error}" if r.error else ""))
    _echo(f"  {test.text}")
    if r.stop:
        _echo(f"error: {r.stop}", err=True)
        return ExitCode.UNUSABLE
    return ExitCode.OK if r.outcome == "sent" else ExitCode.SOME_FAILED


def _confirmed(prepared: Any, count: int) -> bool:
    """Ask before sending; unless the answer is yes, forget a journal made for this run."""
    try:
        if _confirm(count):
            return True
    except BaseException:  # no terminal, or Ctrl-C at the prompt
        prepared.discard()
        raise
    prepared.discard()
    return False


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        raise BatchsmsError("send needs a confirmation, and there is no terminal to ask on: "
                            "run it in a terminal, or pass --yes")
    if click.confirm(f"Send {plural(count, 'message')} now?", default=False):
        return True
    _echo("Nothing sent.")
    return False


def _run(prepared: Any, wait: bool) -> Any:
    import asyncio
    import signal

    from batchsms.cli.progress import Progress
    from batchsms.send.sending import execute

    progress = Progress(sys.stderr)

    async def main() -> Any:
        loop = asyncio.get_running_loop()

        def on_runner(runner: Any) -> None:
            def interrupt() -> None:
                progress.note("Stopping: requests in flight finish first (Ctrl-C again to "
                              "abort them)." if not runner.interrupted else "Aborting.")
                runner.interrupt()

            loop.add_signal_handler(signal.SIGINT, interrupt)

        try:
            return await execute(prepared, on_progress=progress.update, on_runner=on_runner,
                                 wait=wait, on_wait=lambda w: progress.note(
                                     f"Waiting: {waiting_text(w)} (Ctrl-C stops; the next "
                                     "run resumes)"))
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    finally:
        progress.close()


@contextlib.contextmanager
def _interrupt_exits_at_once(folder: Path) -> Iterator[None]:
    """While results are written, Ctrl-C exits at once (130): the journal is consistent at
    every instant, the stale mark stays, half-written files go. Done in the handler itself:
    a KeyboardInterrupt raised into library code can be swallowed (a ``__del__``)."""
    import signal

    from batchsms.report.stale import MARK, drop_partial_files

    def stop(*_: object) -> None:
        try:  # whatever fails here (a closed pipe), the process ends: os._exit in finally
            drop_partial_files(folder)
            os.write(2, f"\nAborted while writing the results files ({MARK} says they are "
                        "stale); the journal records every message. Run the same command "
                        "again to rewrite them.\n".encode())
            sys.stdout.flush()
        finally:
            os._exit(ExitCode.INTERRUPTED)

    if threading.current_thread() is not threading.main_thread():
        yield  # a library caller's thread: signals are not ours to take
        return
    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _rewritten(folder: Path, write: Callable[[], Any]) -> Any:
    """``write()`` the results files of ``folder``: marked stale until it has returned,
    and a Ctrl-C meanwhile exits at once."""
    from batchsms.report.stale import clear_stale, mark_stale

    mark_stale(folder)
    with _interrupt_exits_at_once(folder):
        written = write()
    clear_stale(folder)
    return written


def _finish(prepared: Any, result: Any) -> int:
    from batchsms.cli.summary import send_outcome
    from batchsms.report.html import SendView, write_report
    from batchsms.report.results import write_results
    from batchsms.report.stale import MARK, mark_stale

    if result is not None and result.aborted:  # a second Ctrl-C: out at once
        mark_stale(prepared.folder)
        prepared.close()
        _echo(f"Aborted. The results files were not rewritten ({MARK} says so); the journal "
              "records every message. Run the same send command again: it resumes and "
              "rewrites them.", err=True)
        return ExitCode.INTERRUPTED
    # Said before the wait, so that a Ctrl-C that stopped the run is not met by silence.
    click.echo("Writing results…", err=True)
    def write() -> Any:
        files = write_results(prepared.campaign, prepared.journal, prepared.folder,
                              on_progress=_results_progress())
        write_report(prepared.folder / "report.html", prepared.campaign, prepared.totals,
                     SendView(files.summary_data, files.failures, files.timeline,
                              files.unknowns))
        return files

    try:
        files = _rewritten(prepared.folder, write)
        waiting = prepared.waiting(time.time()) if result is not None else None
    finally:
        prepared.close()
    _echo(send_outcome(files.summary_data, files, result, waiting.count if waiting else 0))
    if result is not None and result.interrupted:
        return ExitCode.INTERRUPTED
    if result is not None and result.stopped:
        _echo(f"error: the run stopped: {result.stopped}", err=True)
        return ExitCode.UNUSABLE
    data = files.summary_data
    if (text := waiting_text(waiting)) is not None:
        click.echo(text + " Run send again then (or use send --wait).")
    pending = data["pending"] - (waiting.count if waiting else 0)
    return ExitCode.SOME_FAILED if data["failed"] or data["unknown"] or pending \
        else ExitCode.OK


@cli.command("track")
@CAMPAIGN
@JSON
@click.option("--wait", is_flag=True,
              help="Ask again every minute until every outcome and delivery is final "
              "(at most --max-wait).")
@click.option("--max-wait", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              metavar="SECONDS", help="With --wait: give up after this long.")
@REPORTS
def track_command(campaign: Path, as_json: bool, wait: bool, max_wait: float,
                  reports: Path) -> int:
    """Ask the provider what became of each message: late confirmations and deliveries.

    Unknown outcomes the provider now shows become sent; every sent message gets its
    delivery (delivered, undelivered, expired, pending, unknown) in results.csv,
    results.xlsx and summary.json. Never sends. Exit 0 when everything is final, 1 when
    some outcomes or deliveries are still open.

    Example: batchsms track campaigns/spring-sale.yaml --wait
    """
    import asyncio

    from batchsms.plan.campaign import load_campaign, report_dir
    from batchsms.report.results import write_results
    from batchsms.report.stale import mark_stale
    from batchsms.send.journal import Journal
    from batchsms.send.sending import JOURNAL
    from batchsms.send.tracking import track

    before = report_dir(load_campaign(campaign), reports)
    if (before / JOURNAL).is_file():
        mark_stale(before)  # track changes the journal: stale until the results are rewritten
    result = asyncio.run(track(campaign, reports, wait=wait, max_wait=max_wait))
    folder = result.journal_path.parent
    journal = Journal.open(result.journal_path, readonly=True)
    try:
        files = _rewritten(folder, lambda: write_results(result.campaign, journal, folder))
    finally:
        journal.close()
    data = {"campaign": result.campaign.name, "asked": result.asked,
            "confirmed": result.confirmed, "still_unknown": result.still_unknown,
            "deliveries": result.deliveries, "resolved": result.resolved,
            "note": result.note, "results": str(files.csv)}
    if as_json:
        _print_json(data)
    else:
        click.echo(track_text(result, files))
    return ExitCode.OK if result.resolved or result.note else ExitCode.SOME_FAILED


@cli.command("status")
@CAMPAIGN
@JSON
@REPORTS
def status_command(campaign: Path, as_json: bool, reports: Path) -> int:
    """Progress and outcome of a campaign, from its journal.

    Counts by state, estimated cost so far, when it last ran, whether it is complete,
    and what a resumed run would do. Sends nothing.

    Example: batchsms status campaigns/spring-sale.yaml
    """
    from batchsms.cli.summary import status_dict, status_text
    from batchsms.report.stale import MARK, is_stale
    from batchsms.send.status import campaign_status

    status = campaign_status(campaign, reports)
    stale = is_stale(status.journal_path.parent)
    if as_json:
        _print_json({**status_dict(status), "results_stale": stale})
    else:
        _echo(status_text(status))
        if stale:
            _echo(f"  the results files are older than the journal ({MARK}): the next send "
                  "or track rewrites them")
    return ExitCode.OK


@cli.command("preview")
@CAMPAIGN
@click.option("--row", "rows", type=int, multiple=True, metavar="N",
              help="A sheet row to preview (repeat for more); default: a few telling rows.")
def preview_command(campaign: Path, rows: tuple[int, ...]) -> int:
    """Show the rendered text of chosen rows, with encoding, segments and cost.

    By default: the first rows, the longest text and the first row of each encoding.
    The characters that forced UCS-2 (and so cost more segments) are highlighted.

    Example: batchsms preview campaigns/spring-sale.yaml --row 5 --row 11
    """
    from batchsms.cli.summary import preview_text
    from batchsms.plan.preview import preview

    loaded, found = preview(campaign, rows)
    # preview_text escapes the sheet's control characters itself; it adds its own highlight
    click.echo(preview_text(loaded, found, highlight=sys.stdout.isatty()))
    return ExitCode.OK


@cli.command("init")
@click.argument("name")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the campaign's folder.")
def init_command(name: str, folder: Path) -> int:
    """Create a working campaign to start from: YAML (every key explained), sheet, template.

    The new campaign runs at once with check, preview, dry-run and send (sandbox).

    Example: batchsms init spring-sale
    """
    from batchsms.plan.campaign import folder_problem
    from batchsms.scaffold import init_campaign

    problem = folder_problem(folder)
    if problem:
        raise click.BadParameter(problem, param_hint="'--folder'")
    path = init_campaign(name, folder)
    _echo(f"Created {path.parent}/: {path.name}, contacts.csv, message.txt")
    _echo(f"Next: batchsms preview {path}   then   batchsms dry-run {path}")
    return ExitCode.OK


def _emulator_help() -> str:
    from batchsms.providers.registry import PROVIDERS  # read when the help is shown

    return ("Serve every provider's emulator over HTTP for rehearsals and tests.\n\n"
            + ", ".join(e.rules.title for e in PROVIDERS.values()) + " answer under "
            + ", ".join(f"/{name}" for name in PROVIDERS) + " on one port, each with a "
            "seeded account that accepts any sender; it prints the provider.base_url values "
            "and the credentials to export.\n\nExample: batchsms emulator --port 8025")


class _RegistryHelp(click.Command):
    """A command whose help text comes from the provider registry when it is shown, so
    that ``batchsms --help`` need not import it."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.help = _emulator_help()
        super().format_help_text(ctx, formatter)


@cli.command("emulator", cls=_RegistryHelp,
             short_help="Serve every provider's emulator over HTTP for rehearsals and tests.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
def emulator_command(host: str, port: int) -> int:
    """``batchsms emulator``: its help comes from the provider registry."""
    import shutil

    import uvicorn

    from batchsms.emulator.rehearsal import base_urls, rehearsal_app

    sock = _listen(host, port)  # before anything is printed: a busy port is a clear error
    folder = Path(tempfile.mkdtemp(prefix="batchsms-emulator-"))
    try:
        app, env = rehearsal_app(folder)
        _echo(f"batchsms emulators on http://{host}:{port} (Ctrl-C stops them)")
        for name, url in base_urls(f"http://{host}:{port}").items():
            _echo(f"  {name:<11} provider.base_url: {url}")
        _echo("Credentials for these emulators (not real ones):")
        for key, value in env.items():
            _echo(f"  export {key}={value}")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                               proxy_headers=False))
        server.run(sockets=[sock])
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)  # the throwaway Voximplant key goes too
    return ExitCode.OK


def _listen(host: str, port: int) -> Any:
    """A socket listening on host:port, or a BatchsmsError that says what to do."""
    import socket

    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as error:
        raise BatchsmsError(f"cannot listen on {host}:{port} ({error.strerror or error}): "
                            "another program (perhaps another batchsms emulator) uses that "
                            "port, or the address is not this machine's. Choose another "
                            "with --port, or stop the other program") from None


def _results_progress() -> Callable[[int, int], None]:
    """``Writing results… n/N`` for a large campaign: redrawn in place on a terminal, a
    line per chunk otherwise (results of a million rows take a while)."""
    tty = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        if total < 100_000:
            return
        line = f"Writing results… {done:,}/{total:,}"
        click.echo(f"\r{line}" if tty else line, err=True, nl=not tty or done >= total)

    return show


def _echo(message: str, err: bool = False) -> None:
    """Print; a control character from a sheet or a provider (ESC retitles the window,
    clears the screen, hides text) is shown as ``<U+001B>`` instead of reaching the terminal."""
    click.echo(escape_controls(message), err=err)


def _print_json(data: dict[str, Any]) -> None:
    _echo(json.dumps(data, indent=2, ensure_ascii=False))


def _error_text(exc: BatchsmsError) -> str:
    problems = getattr(exc, "problems", [str(exc)])
    if len(problems) == 1:
        return f"error: {problems[0]}"
    return f"error: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def write_crash_log(exc: BaseException, folder: Path | None = None) -> Path:
    """Write what a bug report needs about ``exc`` to a new file and return its path.

    The file gets a unique, unpredictable name, is created exclusively (a planted file or
    symlink is never followed or overwritten) and only its owner can read it (0600). It
    holds the exception types and where they were raised, never their messages or any
    value: those may hold contact data or secrets.
    """
    fd, name = tempfile.mkstemp(prefix="batchsms-crash-", suffix=".log",
                                dir=None if folder is None else str(folder))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"batchsms {__version__}, Python {sys.version.split()[0]}, "
                f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
                "Exception messages are left out: they may hold contact data or secrets.\n")
        for one in _chain(exc):
            f.write(f"\n{type(one).__module__}.{type(one).__qualname__} raised at:\n")
            f.writelines(traceback.format_list(traceback.extract_tb(one.__traceback__)))
    return Path(name)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen[::-1]


def _run_cli(argv: list[str] | None) -> Any:
    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if str(message) not in shown:  # the sheet is opened more than once per command
            shown.add(str(message))
            _echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", BatchsmsWarning)
        warnings.showwarning = show
        return cli.main(args=argv, prog_name="batchsms", standalone_mode=False)


def _error_json(exc: BatchsmsError) -> None:
    """With --json, a script reads the failure on stdout too (the text still goes to stderr)."""
    problems = getattr(exc, "problems", [str(exc)])
    _print_json({"error": problems[0] if len(problems) == 1 else f"{len(problems)} problems",
                 "problems": problems, "exit_code": int(exc.exit_code)})


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every outcome becomes one of the documented exit codes."""
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        code = _run_cli(argv)
    except click.exceptions.Abort:
        _echo("Interrupted.", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        if as_json:
            _print_json({"error": exc.format_message(), "problems": [exc.format_message()],
                         "exit_code": int(ExitCode.UNUSABLE)})
        exc.show()
        return ExitCode.UNUSABLE
    except BatchsmsError as exc:
        if as_json:
            _error_json(exc)
        _echo(_error_text(exc), err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        _echo("Interrupted.", err=True)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        try:
            log: Path | str = write_crash_log(exc)
        except OSError:
            log = "no file (the temporary folder is not writable)"
        _echo(f"batchsms hit an internal error (a bug, not your campaign). The details "
              f"are in {log}; please attach that file to a bug report.", err=True)
        return ExitCode.INTERNAL
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
