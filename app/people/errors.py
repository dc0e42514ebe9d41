"""Refusals of the people domain."""

from app.core.errors import DomainError, InvalidInput, RecordedRefusal


class InvalidCredentials(RecordedRefusal):
    code = "invalid_credentials"
    http_status = 401
    message_zh = "用户名或密码错误。"
    message_en = "Wrong username or password."


class AccountLocked(RecordedRefusal):
    code = "account_locked"
    http_status = 423
    message_zh = "连续登录失败次数过多，账户已锁定至 {until}。"
    message_en = "Too many failed attempts; the account is locked until {until}."


class AccountInactive(RecordedRefusal):
    code = "account_inactive"
    http_status = 403
    message_zh = "该账户已停用。"
    message_en = "This account is deactivated."


class WrongSigningPassword(RecordedRefusal):
    code = "wrong_signing_password"
    http_status = 403
    message_zh = "签名密码错误，签名未生效。"
    message_en = "Wrong password; nothing was signed."


class UsernameTaken(DomainError):
    code = "username_taken"
    message_zh = "用户名 {username} 已存在。"
    message_en = "The username {username} is already taken."


class InvalidUsername(InvalidInput):
    code = "invalid_username"
    message_zh = "用户名须为 3–64 位小写字母、数字、点、下划线或连字符。"
    message_en = "A username is 3–64 lowercase letters, digits, dots, underscores or hyphens."


class UnknownRole(InvalidInput):
    code = "unknown_role"
    message_zh = "未知角色：{role}。"
    message_en = "Unknown role: {role}."


class SelfGrantForbidden(DomainError):
    code = "self_grant_forbidden"
    http_status = 403
    message_zh = "不能为自己申请或批准角色授权。"
    message_en = "You cannot propose or approve a role grant for yourself."


class GrantNotPending(DomainError):
    code = "grant_not_pending"
    message_zh = "该角色授权不处于待批准状态。"
    message_en = "This role grant is not awaiting a decision."


class GrantAlreadyHeld(DomainError):
    code = "grant_already_held"
    message_zh = "该用户已持有或已申请角色 {role}。"
    message_en = "The user already holds or has a pending grant of the role {role}."


class TokenAlreadyRevoked(DomainError):
    code = "token_already_revoked"
    message_zh = "该令牌已被吊销。"
    message_en = "This token was already revoked."
