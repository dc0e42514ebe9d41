"""`lims anomalies ...`: scan the records with the anomaly rules (issue 10 item 2), list the rules.

`lims anomalies scan [--since 2026-11-01] [--rule A01 --rule A06]` runs the enabled rules in one
transaction with a progress bar on stderr and ends with one line per rule run, in code order:
`A01 <title>: <n> alarms raised` (n: new alarms; findings that were alarms already are not
counted again).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import typer

anomalies_app = typer.Typer(help="Anomaly detection: scan the records for anomalous or fabricated data.",
                            no_args_is_help=True)


def parse_since(text: str, tz) -> datetime:
    """A date (midnight, lab time) or an ISO datetime (lab time when it names no zone)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz).astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a date (YYYY-MM-DD) nor an ISO datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


@anomalies_app.command("scan")
def anomalies_scan(
    since: str = typer.Option("", "--since", metavar="YYYY-MM-DD|ISO",
                              help="Judge what was recorded since then (lab time); default: everything."),
    rule: list[str] = typer.Option([], "--rule", "-r", metavar="CODE", help="Run only this rule (repeatable)."),
) -> None:
    """Run the anomaly rules over the records and raise alarms for what they find."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.cli import _database, _domain_guard, _fail, _settings, console, err
    from app.core.db import utcnow
    from app.oversight.anomalies import rule_settings, scan
    from app.oversight.rules.base import ScanWindow, rule_by_code

    settings = _settings()
    start = None
    if since:
        try:
            start = parse_since(since, settings.tz)
        except ValueError as exc:
            _fail(str(exc), 2)
    codes = [c.strip().upper() for c in rule]
    for code in codes:
        if rule_by_code(code) is None:
            _fail(f"There is no anomaly rule {code!r}.", 2)
    db = _database(settings)
    with db.transaction() as session:
        in_force = rule_settings(session)
        for code in codes:
            if not in_force[code].enabled:
                err.print(f"{code} is disabled; it does not run.")
        to_run = [c for c in (codes or sorted(in_force)) if in_force[c].enabled]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("scanning", total=len(to_run) or None)

            def progress(code: str, found: int) -> None:
                done = to_run.index(code) if code in to_run else 0  # the rules before this one are done
                bar.update(task, description=f"{code}: {found} findings", completed=done)

            outcome = _domain_guard(lambda: scan(session, None, ScanWindow(until=utcnow(), since=start),
                                                 trigger="cli", rules=codes or None, progress=progress))
    for code in sorted(outcome.raised):
        found = rule_by_code(code)
        console.print(f"{code} {found.title_en if found else ''}: {outcome.raised[code]} alarms raised",
                      soft_wrap=True, highlight=False, markup=False)


@anomalies_app.command("rules")
def anomalies_rules() -> None:
    """The rules with their switch, setting version and thresholds in force."""
    from rich.table import Table

    from app.cli import _database, _settings, console
    from app.oversight.anomalies import rule_settings
    from app.oversight.rules.base import all_rules

    settings = _settings()
    db = _database(settings)
    with db.reading() as session:
        in_force = rule_settings(session)
    table = Table("code", "title", "enabled", "version", "thresholds")
    for r in all_rules():
        s = in_force[r.code]
        table.add_row(r.code, r.title_en, "yes" if s.enabled else "no", str(s.version),
                      ", ".join(f"{k}={format(v, 'f')}" for k, v in s.limits.items()))
    console.print(table)
