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
    # DOMAIN.md §6: the lab head (实验室负责人) reads the interference log unless the filer restricted a record
    LAB_HEAD = "lab_head"


# Lab roles: those an admin may never grant to themselves (DOMAIN.md §2, admin "Never").
LAB_ROLES = frozenset(Role) - {Role.ADMIN, Role.INSPECTOR}
