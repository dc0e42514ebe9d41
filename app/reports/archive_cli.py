"""`lims archive ...` commands (issue 9): write a report's record package, check one offline."""

from __future__ import annotations

import os
from pathlib import Path

import typer

archive_app = typer.Typer(help="Record packages of issued reports.", no_args_is_help=True)


@archive_app.command("export")
def archive_export(
    report_no: str = typer.Argument(..., help="Report number, e.g. BG2026-0001."),
    output: Path = typer.Option(..., "-o", "--output", metavar="FILE.zip", help="The zip file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the record package (zip) of an issued, superseded or withdrawn report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from app.cli import _database, _domain_guard, _fail, _settings, console, err
    from app.reports.archive import export_package, record_export

    if output.exists() and not force:
        _fail(f"{output} exists; use --force to overwrite it.")
    if output.is_dir():
        _fail(f"{output} is a directory.")
    settings = _settings()
    db = _database(settings)
    with db.reading() as session, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("archiving", total=None)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, description=label[-40:], completed=done, total=total)

        summary = _domain_guard(lambda: export_package(session, settings, report_no, output, progress))
    with db.transaction() as session:
        record_export(session, summary, _operator())
    console.print(f"{summary.report_no}: {summary.entries} entries, {summary.events} audit events, "
                  f"{summary.size} bytes written to {summary.path}", soft_wrap=True)
    console.print(f"manifest SHA-256 {summary.manifest_sha256}", soft_wrap=True)


def _operator() -> str:
    """Who runs the CLI: the operating-system account and host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no account name in a bare container
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


@archive_app.command("verify")
def archive_verify(
    package: Path = typer.Argument(..., help="The record package (zip)."),
    certificate: list[Path] = typer.Option(
        [], "--certificate", "-c", metavar="FILE.pem",
        help="The lab's signing certificate (PEM): also check the report PDF's digital signature against it. "
             "Repeat for several."),
) -> None:
    """Check a record package offline: exit 0 when intact, 1 naming the first bad entry."""
    from app.reports.archive import verify_package

    trusted = _certificates(certificate) if certificate else None
    check = verify_package(package, trusted=trusted)
    if check.ok:
        print(f"intact ({check.entries} entries)")
        return
    print(f"FAIL: {check.first_bad}: {check.reason}")
    raise typer.Exit(1)


def _certificates(paths: list[Path]) -> list[bytes]:
    """The certificates (DER) in PEM files; an unreadable file stops the command (exit 2)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.cli import _fail

    found: list[bytes] = []
    for path in paths:
        try:
            found += [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes())]
        except (OSError, ValueError):
            _fail(f"{path}: not a readable PEM certificate file.", 2)
    return found
