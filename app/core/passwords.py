"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.errors import InvalidInput

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class WeakPassword(InvalidInput):
    code = "weak_password"
    message_zh = "密码不符合要求：{detail_zh}"
    message_en = "The password does not meet the policy: {detail_en}"


def check_password_policy(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            detail_zh=f"至少 {MIN_PASSWORD_LENGTH} 个字符", detail_en=f"at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(
            detail_zh=f"最多 {MAX_PASSWORD_LENGTH} 个字符", detail_en=f"at most {MAX_PASSWORD_LENGTH} characters"
        )
    if password.strip().casefold() == username.strip().casefold():
        raise WeakPassword(detail_zh="不能与用户名相同", detail_en="must not be the username")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other (e.g. the demo's) parameters than production's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


@contextmanager
def demo_hashing() -> Iterator[None]:
    """Hash with the smallest argon2 costs while the demo creates its users: their password is
    printed on the console anyway, and the demo signs hundreds of records, each checking the
    password again (argon2 verifies with the parameters stored in the hash). A demo user's hash
    is upgraded to production costs at their first sign-in (`needs_rehash`)."""
    global _hasher
    production = _hasher
    _hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        yield
    finally:
        _hasher = production


def verify_password(password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A valid hash of a random string: verifying against it costs the same as a real check, so a
# login for an unknown username takes as long as one for a known one.
DUMMY_HASH = _hasher.hash("not-a-real-password-8c1e2f")
