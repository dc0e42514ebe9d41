"""The roles of DOMAIN.md §2."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SAMPLER = "sampler"
    CUSTODIAN = "custodian"
    ANALYST = "analyst"
    CHECKER = "checker"
    REVIEWER = "reviewer"
    SIGNATORY = "signatory"
    QUALITY_MANAGER = "quality_manager"
    TECHNICAL_MANAGER = "technical_manager"
    INSPECTOR = "inspector"
    ADMIN = "admin"


# Lab roles: those an admin may never grant to themselves (DOMAIN.md §2, admin "Never").
LAB_ROLES = frozenset(Role) - {Role.ADMIN, Role.INSPECTOR}
