"""Outgoing mail: a plain-text message sent through the lab's SMTP server (LIMS_SMTP_*).

Small on purpose: reminders are the only mail so far. Any failure to reach or talk to the server
becomes one `MailNotSent` with a readable reason, never a traceback.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from app.config import Settings
from app.core.errors import DomainError


class MailNotConfigured(DomainError):
    code = "mail_not_configured"
    http_status = 503
    message_zh = "未配置邮件发送：请设置 LIMS_SMTP_HOST 和 LIMS_REMINDER_TO。"
    message_en = "Mail is not configured: set LIMS_SMTP_HOST and LIMS_REMINDER_TO."


class MailNotSent(DomainError):
    code = "mail_not_sent"
    http_status = 502
    message_zh = "邮件未能通过 {server} 发送：{reason}"
    message_en = "The mail could not be sent through {server}: {reason}"


def build_message(sender: str, recipients: Sequence[str], subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)  # UTF-8, so Chinese text arrives readable
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver `message` to its recipients (LIMS_SMTP_HOST/PORT, optional STARTTLS and login)."""
    if not settings.mail_configured:
        raise MailNotConfigured()
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            refused = smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise MailNotSent(server=server, reason=_smtp_reason(exc)) from None
    except (OSError, UnicodeError) as exc:  # unreachable, refused, timed out, bad TLS, bad host name
        raise MailNotSent(server=server, reason=str(exc) or type(exc).__name__) from None
    if refused:
        raise MailNotSent(server=server, reason=f"recipients refused: {', '.join(sorted(refused))}")


def _smtp_reason(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if code:
        return f"{code} {text}".strip()
    return str(exc) or type(exc).__name__
