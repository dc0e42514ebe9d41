"""`lims report ...` commands (issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

report_app = typer.Typer(help="Issued reports: offline verification.", no_args_is_help=True)

# The contract: 0 valid, 1 invalid or unknown with the reason. A genuine report that was
# superseded or withdrawn is not valid any more: 1, and the reason says which and by what.
EXIT_VALID = 0
EXIT_INVALID = 1


@report_app.command("verify")
def verify(file: Annotated[Path, typer.Argument(help="The report PDF to check.", show_default=False)]) -> None:
    """Check a report PDF offline against this lab's database and certificate.

    Exit 0: issued by the lab and in force. Exit 1, with the reason: invalid (missing, not a
    PDF, changed after signing, not the lab's signature), unknown (the lab issued no report in
    this form), or genuine but no longer in force (superseded by an amendment, or withdrawn).
    """
    from rich.markup import escape

    from app.cli import _database, _settings, console, err
    from app.core.errors import DomainError
    from app.reports.verification import VerificationStatus, verify_report_file

    settings = _settings()
    language = settings.language
    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]invalid[/red]: cannot read {escape(str(file))}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    db = _database(settings)
    with db.reading() as session:
        try:
            outcome = verify_report_file(session, data, settings)
        except DomainError as error:  # the lab's certificate cannot be read: nothing can be judged
            err.print(f"[red]error[/red]: {escape(error.message(language))}")
            raise typer.Exit(EXIT_INVALID) from None
        report_no = outcome.report.report_no if outcome.report is not None else ""
        issued_at = outcome.report.issued_at if outcome.report is not None else None
        reason = outcome.reason(language)
    colour = {VerificationStatus.VALID: "green", VerificationStatus.SUPERSEDED: "yellow",
              VerificationStatus.WITHDRAWN: "yellow"}.get(outcome.status, "red")
    out = console if outcome.status == VerificationStatus.VALID else err
    out.print(f"[{colour}]{outcome.status.value}[/{colour}]: {escape(reason)}")
    console.print(f"file:      {escape(str(file))}")
    console.print(f"sha256:    {outcome.sha256}")
    if report_no:
        console.print(f"report:    {escape(report_no)}")
    if issued_at is not None:
        console.print(f"issued:    {issued_at.astimezone(settings.tz):%Y-%m-%d %H:%M %z}")
    if outcome.signer_subject:
        console.print(f"signed by: {escape(outcome.signer_subject)}")
    if outcome.signed_at is not None:
        console.print(f"signed at: {outcome.signed_at.astimezone(settings.tz):%Y-%m-%d %H:%M:%S %z}")
    raise typer.Exit(EXIT_VALID if outcome.status == VerificationStatus.VALID else EXIT_INVALID)
