"""The exception root for user-caused failures, and the exit codes scripts rely on."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    SOME_FAILED = 1  # finished, but some recipients failed or have an unknown outcome
    UNUSABLE = 2  # the campaign, sheet or template cannot be used, or a usage error
    INTERNAL = 4  # an unexpected internal error; a log file holds the traceback
    INTERRUPTED = 130  # Ctrl-C; the journal is consistent and the next run resumes


class BatchsmsError(Exception):
    """A failure the user caused and can fix; its message says what, where and how."""

    exit_code: ExitCode = ExitCode.UNUSABLE


class BatchsmsWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it as
    ``warning: ...``); its message names the file and row like an error's."""


class CampaignError(BatchsmsError):
    """The campaign file, sheet or template cannot be used.

    ``problems`` holds every problem found, so a user can fix them all in one go.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def located(path: object, where: str | None, what: str, fix: str | None = None) -> str:
    """Format one problem as ``file: where: what. fix``."""
    text = f"{path}: {where}: {what}" if where else f"{path}: {what}"
    if fix:
        text = f"{text.rstrip('.')}. {fix}"
    return text
