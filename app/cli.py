"""The `lims` command line (Typer + Rich)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.config import Settings, get_settings

app = typer.Typer(help="EnviroLIMS: laboratory information management for environmental monitoring.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")


def _add_domain_commands() -> None:
    """Command groups that live with their domain (issue 9 on)."""
    from app.core.worker_cli import worker
    from app.oversight.anomaly_cli import anomalies_app
    from app.reports.archive_cli import archive_app
    from app.reports.report_cli import report_app

    app.add_typer(report_app, name="report")
    app.add_typer(archive_app, name="archive")
    app.add_typer(anomalies_app, name="anomalies")
    app.command("worker")(worker)


_add_domain_commands()
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages are never wrapped mid-word


def _settings() -> Settings:
    try:
        settings = get_settings()
    except Exception as exc:  # invalid LIMS_* values
        err.print(f"[red]Configuration error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    settings.ensure_data_dir()
    return settings


def _database(settings: Settings):
    """A Database for this command; its connections are closed when the command ends."""
    import click

    from app.core.db import Database

    db = Database.from_settings(settings)
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(db.dispose)
    return db


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(code)


def _read_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            _fail("No password on standard input.", 2)
        return value
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _domain_guard(func):
    """Run `func`, turning a DomainError into a clear message and exit code 1."""
    from app.core.errors import DomainError

    try:
        return func()
    except DomainError as exc:
        _fail(f"{exc.message('en')} / {exc.message('zh_CN')}")


# ---------------------------------------------------------------- database


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (Alembic head)."""
    from app.core.migrate import head_revision, upgrade

    settings = _settings()
    upgrade(settings.resolved_database_url)
    console.print(f"database at revision {head_revision()}")


# ---------------------------------------------------------------- users and tokens


@user_app.command("add")
def user_add(
    username: str,
    role: list[str] = typer.Option(..., "--role", help="Role key; repeat for several."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    name_zh: str = typer.Option("", "--name-zh", help="Display name in Chinese (default: username)."),
    name_en: str = typer.Option("", "--name-en", help="Display name in English."),
) -> None:
    """Create a user with roles (a bootstrap act, recorded as the system)."""
    from app.core.roles import Role
    from app.people import service

    unknown = [r for r in role if r not in Role._value2member_map_]
    if unknown:
        _fail(f"Unknown role(s): {', '.join(unknown)}. Roles: {', '.join(r.value for r in Role)}", 2)
    password = _read_password(password_stdin)
    db = _database(_settings())

    def run():
        with db.transaction() as session:
            user = service.create_user(session, None, username, name_zh or username, password,
                                       display_name_en=name_en, check_permission=False)
            for r in dict.fromkeys(role):
                service.grant_role_as_system(session, user, r, "granted with lims user add")
            return user

    user = _domain_guard(run)
    console.print(f"created user {user.username} with roles {', '.join(dict.fromkeys(role))}")


@user_app.command("passwd")
def user_passwd(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Set a new password for a user (and unlock the account)."""
    from app.people import service

    password = _read_password(password_stdin, "New password")
    db = _database(_settings())

    def run():
        with db.transaction() as session:
            user = service.find_user(session, username)
            if user is None:
                _fail(f"No user {username}.")
            service.reset_password(session, None, user.id, password, check_permission=False)

    _domain_guard(run)
    console.print(f"password changed for {username}")


@token_app.command("create")
def token_create(username: str, name: str = typer.Option(..., "--name", help="What the token is for.")) -> None:
    """Create an API token for USERNAME; it is printed once and never stored."""
    from app.people import service

    db = _database(_settings())

    def run():
        with db.transaction() as session:
            user = service.find_user(session, username)
            if user is None:
                _fail(f"No user {username}.")
            return service.create_token(session, None, user.id, name, check_permission=False)[1]

    token = _domain_guard(run)
    print(token)


# ---------------------------------------------------------------- audit trail


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the whole chain and check every checkpoint. Exit 0 if intact, 1 if not."""
    from app.core import audit

    settings = _settings()
    db = _database(settings)
    key_file = settings.resolved_audit_key_file
    key = key_file.read_text().strip().encode("ascii") if key_file.exists() else None
    with db.reading() as session:
        total = audit.count_events(session)
        with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("verify", total=total)
            result = audit.verify_chain(session, key, lambda n: progress.advance(task, n),
                                       audit.read_anchors(settings.resolved_audit_anchor_file))
    if key is None and result.checkpoints:
        err.print(f"[yellow]warning: audit key file {key_file} not found; checkpoint signatures not checked[/yellow]")
    if result.ok:
        print(f"OK {result.events} events, head {result.head_hash}")
        return
    print(f"FAIL at seq {result.first_bad_seq}: {result.reason}")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Anchor the current head: seq and hash signed with the key outside the database."""
    from app.core import audit

    settings = _settings()
    key = audit.read_or_create_audit_key(settings.resolved_audit_key_file)
    db = _database(settings)
    with db.transaction() as session:
        checkpoint = audit.create_checkpoint(session, None, key, settings.resolved_audit_anchor_file)
    print(f"checkpoint at seq {checkpoint.seq}, head {checkpoint.head_hash}")


# ---------------------------------------------------------------- backup


@app.command("backup")
def backup(dest: Path) -> None:
    """Consistent online backup of the database and the data dir, with a SHA-256 manifest."""

    from app.core.backup import BackupError, create_backup

    settings = _settings()
    try:
        manifest = create_backup(settings, dest, console=err)
    except BackupError as exc:
        _fail(str(exc))
    console.print(f"backup written to {escape(str(dest))}: {len(manifest['files'])} files, "
                  f"audit head seq {manifest['audit']['seq']} {manifest['audit']['head_hash']}",
                  soft_wrap=True)


@app.command("restore")
def restore(src: Path) -> None:
    """Restore a backup into an empty data dir (and empty database), then verify the chain."""

    from app.core.backup import BackupError, restore_backup

    settings = _settings()
    try:
        result = restore_backup(settings, src, console=err)
    except BackupError as exc:
        _fail(str(exc))
    console.print(f"restored: OK {result.events} events, head {result.head_hash}", soft_wrap=True)


# ---------------------------------------------------------------- instruments


@app.command("reminders")
def reminders_command(
    mail: bool = typer.Option(False, "--mail", help="Also mail the lists to LIMS_REMINDER_TO through LIMS_SMTP_HOST."),
) -> None:
    """Print the instruments overdue or due soon, soonest due first, then the reference materials,
    standard solutions and reagents expiring within 30 days, expired but still in stock, and the
    materials low in stock (dates in lab time).

    Printing never sends mail: add --mail to send the same lists in one mail (nothing to remind
    of is not mailed). When LIMS_SMTP_HOST and LIMS_REMINDER_TO are set, `lims serve` also mails
    them by itself once a lab day after 08:00; either way a sent mail is recorded in the audit
    trail, so the daily mail skips a day on which one already went out. Exit 0; 1 when the mail
    could not be sent; 2 with --mail when mail is not configured.
    """
    from app.core.mail import MailNotConfigured, MailNotSent
    from app.instruments.reminders import STATUS_TEXT, reminder_lines
    from app.reference_materials import reminders as material_reminders

    settings = _settings()
    if mail and not settings.mail_configured:
        _fail(f"{MailNotConfigured().message('en')} / {MailNotConfigured().message('zh_CN')}", 2)
    db = _database(settings)
    with db.reading() as session:
        lines = reminder_lines(session)
        materials = material_reminders.material_reminder_lines(session)
    today = db.calendar.today()
    if not lines:
        console.print(f"No instruments are overdue or due soon ({today}, {db.calendar.tz}).")
        console.print("没有超期或即将到期的仪器。")
    else:
        table = Table(title=f"Instruments overdue or due soon / 超期或即将到期的仪器 ({today}, {db.calendar.tz})")
        for column, wrap in (("asset no. 资产编号", False), ("name 名称", True), ("status 状态", False),
                             ("valid until 有效期至", False), ("days 天数", False), ("responsible 责任人", True)):
            table.add_column(column, no_wrap=not wrap, overflow="fold")
        for line in lines:
            zh, en = STATUS_TEXT[line.status]
            style = "red" if line.days_left is None or line.days_left < 0 else "yellow"
            table.add_row(escape(line.asset_no), escape(line.name), f"[{style}]{en} {zh}[/{style}]",
                          str(line.valid_until) if line.valid_until else "never 从未",
                          str(line.days_left) if line.days_left is not None else "—", escape(line.responsible))
        console.print(table)
    if materials.empty:
        console.print("No reference materials, standard solutions or reagents are expiring within "
                      f"{material_reminders.EXPIRING_DAYS} days, expired in stock or low in stock.")
        console.print("没有即将到期、已过期仍在库或库存不足的标准物质、标准溶液与试剂。")
    for material_table in material_reminders.tables(materials, today, str(db.calendar.tz)):
        console.print(material_table)
    if not mail or (not lines and materials.empty):
        return
    try:
        material_reminders.send_reminders(db, settings, lines, materials)
    except (MailNotSent, MailNotConfigured) as exc:
        _fail(f"{exc.message('en')} / {exc.message('zh_CN')}", 2 if isinstance(exc, MailNotConfigured) else 1)
    recipients = escape(", ".join(settings.reminder_recipients))
    if materials.empty:
        console.print(f"mailed {len(lines)} instrument(s) to {recipients}", soft_wrap=True)
    else:
        console.print(f"mailed {len(lines)} instrument(s) and {materials.count} reference material reminder(s) "
                      f"to {recipients}", soft_wrap=True)


# ---------------------------------------------------------------- demo and server


@app.command("serve")
def serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port")) -> None:
    """Serve the web application and API."""
    import os

    import uvicorn

    _settings()
    os.environ["LIMS_RUN_JOBS"] = "true"
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, proxy_headers=True)


@app.command("demo")
def demo(
    no_serve: bool = typer.Option(False, "--no-serve", help="Load the demo data and exit."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Create the data dir, migrate, load demo data (one lab, a user per role, instruments) and serve."""
    from app.core.files import file_store
    from app.core.migrate import upgrade
    from app.demo import DEMO_PASSWORD, load_demo

    settings = _settings()
    upgrade(settings.resolved_database_url)
    db = _database(settings)
    with db.transaction() as session:
        users = load_demo(session, file_store(settings.ensure_data_dir()))
    db.dispose()
    table = Table(title=f"Demo logins (password for all: {DEMO_PASSWORD})")
    table.add_column("username")
    table.add_column("role")
    table.add_column("name")
    for u in users:
        table.add_row(u.username, u.role.value, f"{u.name_zh} ({u.name_en})")
    console.print(table)
    console.print(f"data dir: {settings.data_path}")
    if not no_serve:
        console.print(f"serving on http://{host}:{port}  (Ctrl+C to stop)")
        serve(host=host, port=port)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
