"""Settings read from LIMS_* environment variables (pydantic-settings)."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_LANGUAGES = ("zh_CN", "en")


class Settings(BaseSettings):
    """Runtime configuration. Every value can be set as `LIMS_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="LIMS_", extra="ignore")

    data_dir: Path = Field(default=Path("./var"))
    database_url: str | None = None
    secret_key: str | None = None
    timezone: str = "Asia/Shanghai"
    language: str = "zh_CN"
    audit_key_file: Path | None = None
    session_idle_minutes: int = 30
    login_max_failures: int = 5
    login_lock_minutes: int = 15
    due_soon_days: int = 30
    page_size: int = 50
    max_upload_mb: int = 50
    cookie_secure: bool = False
    run_jobs: bool = False  # `lims serve` turns this on: daily audit checkpoint, reminders
    # Outgoing mail (instrument reminders). Mail is configured when a host and recipients are set.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30
    mail_from: str = "envirolims@localhost"
    reminder_to: str = ""  # comma-separated addresses
    # Sites and field sampling. With no tile URL the site map draws the points on a plain
    # coordinate grid (labs often run offline); e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png
    map_tile_url: str = ""
    map_tile_attribution: str = ""
    gps_warning_radius_m: int = Field(default=200, ge=1, le=100_000)
    # tokens: {site} {yyyy} {yy} {MM} {dd} {yyMMdd} {yyyyMMdd} {seq} or {seq:03}; see app/samples/numbering.py
    sample_no_pattern: str = "{site}-{yyMMdd}-{seq:03}"
    adhoc_site_code: str = "WT"  # the {site} of client (ad hoc) samples without a site: 委托
    field_photo_required: bool = True  # a routine sample's field record is signed with >= 1 photo
    max_photo_mb: int = Field(default=20, ge=1, le=200)
    # Samples are kept this many days after their report (or their rejection) unless a retention
    # rule for the client or the matrix says otherwise (app/samples/retention.py)
    retention_days_default: int = Field(default=30, ge=0, le=36_500)
    # Reports (issue 9). Numbers: the sample-number tokens without {site}, e.g. BG{yyyy}-{seq:04}.
    report_no_pattern: str = "BG{yyyy}-{seq:04}"
    # The address printed in every report's QR code: {public_base_url}/verify/{token}
    public_base_url: str = "http://127.0.0.1:8000"
    # Years records are kept from a report's issue (DOMAIN.md §4.7: at least 6), per record type
    report_retention_years: int = Field(default=6, ge=6, le=100)
    raw_record_retention_years: int = Field(default=6, ge=6, le=100)
    # A CMA-marked report may carry out-of-scope items flagged * where the lab's CMA authority
    # permits it (DOMAIN.md §5); by default any out-of-scope item drops the mark
    cma_mark_with_flagged_items: bool = False
    # The lab's signing certificate (PKCS#12). Unset: a self-signed demo certificate is created
    # in the data dir (`make demo`); production sets these.
    report_pkcs12_file: Path | None = None
    report_pkcs12_password: str = ""
    # Background jobs: "auto" runs them on an in-process thread with SQLite and on procrastinate
    # (`lims worker`) with PostgreSQL; "thread" and "procrastinate" force one; "inline" runs a
    # job in the request that enqueued it, after its commit (tests)
    job_queue: str = "auto"

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"LIMS_LANGUAGE must be one of {SUPPORTED_LANGUAGES}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)  # raises on an unknown zone
        return value

    @property
    def reminder_recipients(self) -> list[str]:
        return [a.strip() for a in self.reminder_to.split(",") if a.strip()]

    @property
    def mail_configured(self) -> bool:
        return bool(self.smtp_host.strip() and self.reminder_recipients)

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'lims.db'}"

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def resolved_audit_key_file(self) -> Path:
        return (self.audit_key_file or self.data_path / "audit.key").expanduser().resolve()

    @cached_property
    def resolved_audit_anchor_file(self) -> Path:
        """Checkpoints recorded outside the database, beside the audit key."""
        key_file = self.resolved_audit_key_file
        return key_file.with_name(key_file.stem + ".anchors")

    def ensure_data_dir(self) -> Path:
        self.data_path.mkdir(parents=True, exist_ok=True)
        return self.data_path

    @cached_property
    def resolved_secret_key(self) -> str:
        """The cookie-signing key; generated once into the data dir when LIMS_SECRET_KEY is unset."""
        if self.secret_key:
            return self.secret_key
        return read_or_create_key(self.ensure_data_dir() / "secret.key")


def read_or_create_key(path: Path) -> str:
    """Return the key stored at `path`, creating a random one (mode 0600) if absent."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def get_settings() -> Settings:
    return Settings()


SESSION_SETTINGS_KEY = "lims_settings"


def settings_of(session: Any) -> Settings:
    """The settings of the Database that opened `session` (services read lab policy such as the
    sample-number pattern from here), or the defaults from the environment."""
    settings = session.info.get(SESSION_SETTINGS_KEY)
    if settings is None:
        settings = Settings()
        session.info[SESSION_SETTINGS_KEY] = settings
    return settings
