"""Domain errors: values with a code and a message in both languages.

Services raise these; one set of handlers (app.core.handlers) renders them as an htmx
fragment, a page or RFC 9457 problem JSON. No bare HTTPException in services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class DomainError(Exception):
    """A rule was violated; nothing changed."""

    code: ClassVar[str] = "domain_error"
    http_status: ClassVar[int] = 409
    message_zh: ClassVar[str] = "操作被拒绝。"
    message_en: ClassVar[str] = "The operation was refused."

    def __init__(
        self,
        message_zh: str | None = None,
        message_en: str | None = None,
        *,
        code: str | None = None,
        http_status: int | None = None,
        **params: Any,
    ) -> None:
        self._zh = message_zh or self.message_zh
        self._en = message_en or self.message_en
        self.params = params
        if code:
            self.code = code  # type: ignore[misc]
        if http_status:
            self.http_status = http_status  # type: ignore[misc]
        super().__init__(self.message("en"))

    def message(self, language: str) -> str:
        template = self._zh if language.startswith("zh") else self._en
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return template


class RecordedRefusal(DomainError):
    """A refusal whose record must be kept (failed login, wrong signing password).

    The unit of work rolls back everything the refused act did, then runs `record` in a fresh
    transaction and commits it: the refusal leaves its trace, and nothing else changes.
    """

    def __init__(self, *args: Any, record: Callable[[Any], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record


class InvalidInput(DomainError):
    code = "invalid_input"
    http_status = 422
    message_zh = "输入无效：{detail}"
    message_en = "Invalid input: {detail}"


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
    message_zh = "未找到{what_zh}。"
    message_en = "{what_en} not found."


class NotAuthenticated(DomainError):
    code = "not_authenticated"
    http_status = 401
    message_zh = "请先登录。"
    message_en = "Please sign in."


class SessionExpired(NotAuthenticated):
    code = "session_expired"
    message_zh = "会话因长时间无操作已过期，请重新登录。"
    message_en = "Your session expired after inactivity. Please sign in again."


class PermissionDenied(DomainError):
    code = "permission_denied"
    http_status = 403
    message_zh = "您没有执行此操作的权限（需要：{permission}）。"
    message_en = "You do not have permission for this (needs: {permission})."


class InspectorReadOnly(PermissionDenied):
    """DOMAIN.md §2 rule 4: inspectors read everything and change nothing."""

    code = "inspector_read_only"
    message_zh = "监管检查员为只读角色，不能修改任何记录。"
    message_en = "Inspectors have read-only access and cannot change any record."


class CsrfFailed(DomainError):
    code = "csrf_failed"
    http_status = 403
    message_zh = "表单已失效（CSRF 校验失败），请刷新页面后重试。"
    message_en = "The form has expired (CSRF check failed). Reload the page and try again."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    http_status = 413
    message_zh = "上传内容过大（上限 {limit_mb} MB）。"
    message_en = "The upload is too large (limit {limit_mb} MB)."
