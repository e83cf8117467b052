"""The command line: parse flags, call one library function, print, return an exit code."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import click

from batchsms import __version__
from batchsms.cli.summary import (
    dry_run_text,
    preview_text,
    send_outcome,
    send_preamble,
    status_dict,
    status_text,
)
from batchsms.display import plural
from batchsms.errors import BatchsmsError, CampaignError, ExitCode
from batchsms.report.dryrun import check, dry_run

CAMPAIGN = click.argument("campaign", type=click.Path(path_type=Path))
REPORTS = click.option("--reports", type=click.Path(file_okay=False, path_type=Path),
                       default=None,
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
    result = check(campaign)
    if as_json:
        _print_json({**result.totals.to_dict(), "ready": not result.problems,
                     "problems": list(result.problems)})
    else:
        click.echo(dry_run_text(result, title="check failed" if result.problems
                                else "check passed"))
    if result.problems:
        click.echo(_error_text(CampaignError(list(result.problems))), err=True)
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
    result = dry_run(campaign, reports)
    if as_json:
        _print_json({**result.totals.to_dict(), "campaign": result.campaign.name,
                     "provider": result.campaign.provider.name,
                     "report": str(result.csv_path)})
    else:
        click.echo(dry_run_text(result))
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
@REPORTS
def send_command(campaign: Path, yes: bool, accept_changes: bool, resend_unknown: bool,
                 test_to: str | None, test_row: int | None, message_again: bool,
                 same_account: bool, reports: Path) -> int:
    """Send the campaign, or resume it where an earlier run stopped.

    Shows the dry-run totals and asks for confirmation (or takes --yes); sends in
    chunks within the provider's rate; journals every step so that a crash or Ctrl-C
    never loses or duplicates a message; writes results.csv, results.xlsx,
    summary.json and retry.csv to REPORTS/<name>/.

    Example: batchsms send campaigns/spring-sale.yaml --yes
    """
    if test_to is not None:
        return _test_send(campaign, test_to, test_row, reports)
    if test_row is not None:
        raise click.UsageError("--row goes with --test-to")
    from batchsms.send.sending import prepare_send

    prepared = prepare_send(campaign, reports, accept_changes=accept_changes,
                            resend_unknown=resend_unknown, message_again=message_again,
                            same_account=same_account)
    click.echo(send_preamble(prepared))
    left = prepared.to_do()
    if left["to_send"] + left["to_look_up"] == 0:
        click.echo("Nothing left to send.")
        return _finish(prepared, None)
    if not yes and not _confirmed(prepared, left["to_send"]):
        return ExitCode.OK  # the person said no: nothing went wrong
    return _finish(prepared, _run(prepared))


def _test_send(campaign: Path, to: str, row: int | None, reports: Path) -> int:
    import asyncio

    from batchsms.send.sending import send_test

    test = asyncio.run(send_test(campaign, to, row, reports))
    r = test.result
    click.echo(f"Test send of row {test.row} to {test.to}: {r.outcome}"
               + (f" (message id {r.message_id})" if r.message_id else "")
               + (f": {r.error}" if r.error else ""))
    click.echo(f"  {test.text}")
    if r.stop:
        click.echo(f"error: {r.stop}", err=True)
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
    click.echo("Nothing sent.")
    return False


def _run(prepared: Any) -> Any:
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
            return await execute(prepared, on_progress=progress.update, on_runner=on_runner)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        return asyncio.run(main())
    finally:
        progress.close()


def _finish(prepared: Any, result: Any) -> int:
    from batchsms.report.html import SendView, write_report
    from batchsms.report.results import write_results

    click.echo("Writing results…", err=True)
    try:
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
        write_report(prepared.folder / "report.html", prepared.campaign, prepared.totals,
                     SendView(files.summary_data, files.failures, files.timeline,
                              files.unknowns))
    finally:
        prepared.close()
    click.echo(send_outcome(files.summary_data, files, result))
    if result is not None and result.interrupted:
        return ExitCode.INTERRUPTED
    if result is not None and result.stopped:
        click.echo(f"error: the run stopped: {result.stopped}", err=True)
        return ExitCode.UNUSABLE
    data = files.summary_data
    return ExitCode.SOME_FAILED if data["failed"] or data["unknown"] or data["pending"] \
        else ExitCode.OK


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
    from batchsms.send.sending import campaign_status

    status = campaign_status(campaign, reports)
    if as_json:
        _print_json(status_dict(status))
    else:
        click.echo(status_text(status))
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
    from batchsms.plan.preview import preview

    loaded, found = preview(campaign, rows)
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
    from batchsms.scaffold import init_campaign

    path = init_campaign(name, folder)
    click.echo(f"Created {path.parent}/: {path.name}, contacts.csv, message.txt")
    click.echo(f"Next: batchsms preview {path}   then   batchsms dry-run {path}")
    return ExitCode.OK


@cli.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=int, help="Port to listen on.")
def emulator_command(host: str, port: int) -> int:
    """Serve the four provider emulators over HTTP for rehearsals and tests.

    Mailjet, MailerSend, Voximplant and TXTY answer under /mailjet, /mailersend,
    /voximplant and /txty on one port, each with a seeded account that accepts any
    sender; it prints the provider.base_url values and the credentials to export.

    Example: batchsms emulator --port 8025
    """
    import uvicorn

    from batchsms.emulator.rehearsal import base_urls, rehearsal_app

    app, env = rehearsal_app(Path(tempfile.mkdtemp(prefix="batchsms-emulator-")))
    click.echo(f"batchsms emulators on http://{host}:{port} (Ctrl-C stops them)")
    for name, url in base_urls(f"http://{host}:{port}").items():
        click.echo(f"  {name:<11} provider.base_url: {url}")
    click.echo("Credentials for these emulators (not real ones):")
    for key, value in env.items():
        click.echo(f"  export {key}={value}")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=False)
    return ExitCode.OK


def _print_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _error_text(exc: BatchsmsError) -> str:
    problems = getattr(exc, "problems", [str(exc)])
    if len(problems) == 1:
        return f"error: {problems[0]}"
    return f"error: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _write_crash_log() -> Path:
    path = Path(tempfile.gettempdir()) / f"batchsms-crash-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


def _error_json(exc: BatchsmsError) -> None:
    """With --json, a script reads the failure on stdout too (the text still goes to stderr)."""
    problems = getattr(exc, "problems", [str(exc)])
    _print_json({"error": problems[0] if len(problems) == 1 else f"{len(problems)} problems",
                 "problems": problems, "exit_code": int(exc.exit_code)})


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every outcome becomes one of the documented exit codes."""
    as_json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=argv, prog_name="batchsms", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
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
        click.echo(_error_text(exc), err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return ExitCode.INTERRUPTED
    except Exception:
        log = _write_crash_log()
        click.echo(f"batchsms hit an internal error (a bug, not your campaign). The details "
                   f"are in {log}; please attach that file to a bug report.", err=True)
        return ExitCode.INTERNAL
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
