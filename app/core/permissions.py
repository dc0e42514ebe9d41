"""Permissions, deny by default.

Every route declares the permission it needs with `require(...)` (or `public()` for the few
open ones); a test walks all routes and fails on any that does not. Roles map to permissions;
the inspector holds every read permission and no other, so every mutating route refuses an
inspector here, in the kernel, not in a template (DOMAIN.md §2 rule 4). Roles carry validity
dates and are evaluated at the time of the act (rule 5).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.core.db import utcnow
from app.core.errors import InspectorReadOnly, PermissionDenied
from app.core.roles import Role


class Permission(StrEnum):
    # read
    DASHBOARD_VIEW = "dashboard.view"
    LAB_READ = "lab.read"
    USERS_READ = "users.read"
    AUDIT_READ = "audit.read"
    INSTRUMENTS_READ = "instruments.read"
    MATERIALS_READ = "materials.read"
    SITES_READ = "sites.read"
    SAMPLES_READ = "samples.read"
    ANALYSIS_READ = "analysis.read"
    REPORTS_READ = "reports.read"
    # personal: a user's own language, password and tokens; never a lab record
    OWN_ACCOUNT = "account.own"
    # change
    LAB_MANAGE = "lab.manage"
    USERS_MANAGE = "users.manage"
    ROLES_APPROVE = "roles.approve"
    TOKENS_MANAGE = "tokens.manage"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_REVIEW = "audit.review"
    # instruments: register and keep calibration records (technical manager); record checks and
    # maintenance (whoever runs the instrument); 计量确认 (its responsible person, checked in
    # the service); impact dispositions (quality manager)
    INSTRUMENTS_MANAGE = "instruments.manage"
    INSTRUMENTS_RECORD = "instruments.record"
    INSTRUMENTS_CONFIRM = "instruments.confirm"
    INSTRUMENTS_DISPOSE = "instruments.dispose"
    # reference materials and reagents: register, receive and dispose of stock (custodian,
    # technical manager); open, use, prepare standard solutions (analysts, samplers for field
    # buffers); quarantine or withdraw a lot (quality and technical manager)
    MATERIALS_MANAGE = "materials.manage"
    MATERIALS_USE = "materials.use"
    MATERIALS_WITHDRAW = "materials.withdraw"
    # sites and plans: propose site changes, draft and approve plans, schedule and dispatch tasks
    # (technical manager); decide site change requests (quality manager, recording the approving
    # department's reference)
    SITES_MANAGE = "sites.manage"
    SITES_APPROVE = "sites.approve"
    # samples: register (from tasks, ad hoc, in bulk) and print labels (custodian, technical
    # manager); the field record (sampler)
    SAMPLES_REGISTER = "samples.register"
    FIELD_RECORD = "samples.field"
    # custody and the lab part of samples (issue 7): hand over and pack coolers (whoever holds
    # samples: samplers, custodians, analysts); receive at the door, store, move, propose
    # disposal (custodian); prepare (analyst); decide disposals and allow late preparation or
    # analysis (quality manager)
    CUSTODY_RECORD = "samples.custody"
    SAMPLES_RECEIVE = "samples.receive"
    STORAGE_MANAGE = "samples.storage"
    SAMPLES_PREPARE = "samples.prepare"
    DISPOSAL_APPROVE = "samples.disposal_approve"
    HOLDING_DEVIATION = "samples.holding_deviation"
    # analysis (issue 8): methods and their versions, MDL studies, qualifications (上岗证), limit
    # sets and import profiles (technical manager); batches, curves, results, imports, corrective
    # actions and signing (analyst); control-chart baselines, the QC rules (quality manager and
    # technical manager)
    METHODS_MANAGE = "analysis.methods"
    ANALYSIS_RECORD = "analysis.record"
    QC_RULES = "analysis.qc_rules"
    # reports (issue 9): prepare (编制: analysts, technical manager); the three review levels
    # (checker 校核, reviewer 审核, signatory 签发; separation of duties is checked in the
    # service); amend and withdraw issued reports (quality manager); keep the CMA scope and
    # propose signatory scopes (technical manager); approve signatory scopes (quality manager)
    REPORTS_PREPARE = "reports.prepare"
    REPORTS_CHECK = "reports.check"
    REPORTS_REVIEW = "reports.review"
    REPORTS_APPROVE = "reports.approve"
    REPORTS_AMEND = "reports.amend"
    # queue the digital signing again after a failure (the approving signatory or the QM: issue.retry_issue)
    REPORTS_RETRY_ISSUE = "reports.retry_issue"
    SCOPES_MANAGE = "reports.scopes"
    SCOPES_APPROVE = "reports.scopes_approve"
    # oversight (issue 10). The interference log (干预留痕): any lab user files a record and adds
    # to their own (never edits); the quality manager and inspectors see every record, except
    # one naming them as the interferer; the quality manager records the follow-up (read,
    # reported to an authority). Anomaly alarms: read by those who review data, the quality
    # manager and inspectors; disposed of and their rule thresholds set by the quality manager;
    # automatic-station data imported by the technical manager. Inspections: the inspector's
    # own draws and findings (the one thing an inspector writes, never a lab record); the
    # quality manager answers findings. The quality dashboard: quality manager and inspectors.
    INTERFERENCE_READ = "oversight.interference_read"
    INTERFERENCE_OVERSEE = "oversight.interference_oversee"
    INTERFERENCE_FILE = "oversight.interference_file"
    INTERFERENCE_FOLLOW_UP = "oversight.interference_follow_up"
    # every record the filer did not restrict to the quality manager and inspectors (the lab head)
    INTERFERENCE_UNRESTRICTED = "oversight.interference_unrestricted"
    ALARMS_READ = "oversight.alarms_read"
    ALARMS_DISPOSE = "oversight.alarms_dispose"
    ANOMALY_RULES = "oversight.anomaly_rules"
    STATION_DATA_IMPORT = "oversight.station_import"
    INSPECTIONS_READ = "oversight.inspections_read"
    INSPECTIONS_RECORD = "oversight.inspections_record"
    INSPECTIONS_RESPOND = "oversight.inspections_respond"
    QUALITY_DASHBOARD = "oversight.quality_dashboard"


READ_PERMISSIONS = frozenset(
    {Permission.DASHBOARD_VIEW, Permission.LAB_READ, Permission.USERS_READ, Permission.AUDIT_READ,
     Permission.INSTRUMENTS_READ, Permission.MATERIALS_READ, Permission.SITES_READ, Permission.SAMPLES_READ,
     Permission.ANALYSIS_READ, Permission.REPORTS_READ, Permission.INTERFERENCE_READ,
     Permission.INTERFERENCE_OVERSEE, Permission.INTERFERENCE_UNRESTRICTED, Permission.ALARMS_READ,
     Permission.INSPECTIONS_READ, Permission.QUALITY_DASHBOARD}
)
PERSONAL_PERMISSIONS = frozenset({Permission.OWN_ACCOUNT})
# What an inspector writes: their own inspections and findings, never a lab record.
INSPECTOR_OWN_PERMISSIONS = frozenset({Permission.INSPECTIONS_RECORD})
OVERSIGHT_READ = frozenset({Permission.INTERFERENCE_OVERSEE, Permission.INTERFERENCE_UNRESTRICTED,
                            Permission.ALARMS_READ, Permission.INSPECTIONS_READ, Permission.QUALITY_DASHBOARD})
EVERY_USER = (READ_PERMISSIONS - {Permission.AUDIT_READ, Permission.USERS_READ} - OVERSIGHT_READ
              | PERSONAL_PERMISSIONS | {Permission.INTERFERENCE_FILE})
REVIEWS_DATA = frozenset({Permission.ALARMS_READ})

RUNS_INSTRUMENTS = frozenset({Permission.INSTRUMENTS_RECORD, Permission.INSTRUMENTS_CONFIRM})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SAMPLER: EVERY_USER | RUNS_INSTRUMENTS | {Permission.MATERIALS_USE, Permission.FIELD_RECORD,
                                                    Permission.CUSTODY_RECORD},
    Role.CUSTODIAN: EVERY_USER | {Permission.MATERIALS_MANAGE, Permission.SAMPLES_REGISTER, Permission.CUSTODY_RECORD,
                                  Permission.SAMPLES_RECEIVE, Permission.STORAGE_MANAGE},
    Role.ANALYST: EVERY_USER | RUNS_INSTRUMENTS | {Permission.MATERIALS_USE, Permission.CUSTODY_RECORD,
                                                    Permission.SAMPLES_PREPARE, Permission.ANALYSIS_RECORD,
                                                    Permission.REPORTS_PREPARE},
    Role.CHECKER: EVERY_USER | REVIEWS_DATA | {Permission.REPORTS_CHECK},
    Role.REVIEWER: EVERY_USER | REVIEWS_DATA | {Permission.REPORTS_REVIEW},
    Role.SIGNATORY: EVERY_USER | REVIEWS_DATA | {Permission.REPORTS_APPROVE, Permission.REPORTS_RETRY_ISSUE},
    Role.QUALITY_MANAGER: EVERY_USER
    | {
        Permission.USERS_READ,
        Permission.AUDIT_READ,
        Permission.ROLES_APPROVE,
        Permission.AUDIT_CHECKPOINT,
        Permission.AUDIT_REVIEW,
        Permission.INSTRUMENTS_DISPOSE,
        Permission.MATERIALS_WITHDRAW,
        Permission.SITES_APPROVE,
        Permission.DISPOSAL_APPROVE,
        Permission.HOLDING_DEVIATION,
        Permission.QC_RULES,
        Permission.REPORTS_AMEND,
        Permission.REPORTS_RETRY_ISSUE,
        Permission.SCOPES_APPROVE,
    }
    | OVERSIGHT_READ
    | {Permission.INTERFERENCE_FOLLOW_UP, Permission.ALARMS_DISPOSE, Permission.ANOMALY_RULES,
       Permission.INSPECTIONS_RESPOND},
    Role.TECHNICAL_MANAGER: EVERY_USER
    | RUNS_INSTRUMENTS
    | {Permission.USERS_READ, Permission.AUDIT_READ, Permission.INSTRUMENTS_MANAGE, Permission.MATERIALS_MANAGE,
       Permission.MATERIALS_USE, Permission.MATERIALS_WITHDRAW, Permission.SITES_MANAGE,
       Permission.SAMPLES_REGISTER, Permission.METHODS_MANAGE, Permission.QC_RULES,
       Permission.REPORTS_PREPARE, Permission.SCOPES_MANAGE, Permission.ALARMS_READ,
       Permission.STATION_DATA_IMPORT},
    Role.INSPECTOR: READ_PERMISSIONS | PERSONAL_PERMISSIONS | INSPECTOR_OWN_PERMISSIONS,
    # DOMAIN.md §2: the admin never touches the interference log
    Role.ADMIN: EVERY_USER - {Permission.INTERFERENCE_FILE, Permission.INTERFERENCE_READ}
    | {
        Permission.USERS_READ,
        Permission.AUDIT_READ,
        Permission.USERS_MANAGE,
        Permission.TOKENS_MANAGE,
        Permission.LAB_MANAGE,
    },
    # DOMAIN.md §6: the lab head reads the quality picture and the interference log, except the
    # records a filer restricted to the quality manager and inspectors; decides nothing here
    Role.LAB_HEAD: EVERY_USER
    | {Permission.USERS_READ, Permission.AUDIT_READ, Permission.ALARMS_READ, Permission.INSPECTIONS_READ,
       Permission.QUALITY_DASHBOARD, Permission.INTERFERENCE_UNRESTRICTED},
}

ROLE_CACHE_KEY = "lims_roles"


def is_mutating(permission: Permission) -> bool:
    return permission not in READ_PERMISSIONS


def roles_at(session: Session, user_id: int, at: datetime | None = None) -> frozenset[Role]:
    """The roles a user holds at `at` (default now): approved grants whose period covers it."""
    from app.people.models import RoleGrant

    when = at or utcnow()
    cache = session.info.setdefault(ROLE_CACHE_KEY, {})
    key = (user_id, None if at is None else when)
    if key in cache:
        return cache[key]
    rows = session.scalars(
        select(RoleGrant.role).where(
            RoleGrant.user_id == user_id,
            RoleGrant.status == "active",
            RoleGrant.valid_from <= when,
            or_(RoleGrant.valid_to.is_(None), RoleGrant.valid_to > when),
        )
    ).all()
    roles = frozenset(Role(r) for r in rows if r in Role._value2member_map_)
    cache[key] = roles
    return roles


def forget_roles(session: Session) -> None:
    session.info.pop(ROLE_CACHE_KEY, None)


def permissions_of(roles: frozenset[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)


def has_permission(
    session: Session, user_id: int, permission: Permission, at: datetime | None = None
) -> bool:
    return permission in permissions_of(roles_at(session, user_id, at))


def ensure(session: Session, user: object, permission: Permission, at: datetime | None = None) -> None:
    """Raise PermissionDenied (InspectorReadOnly for an inspector) unless `user` may do it."""
    user_id = getattr(user, "id", None)
    roles = roles_at(session, user_id, at) if user_id is not None else frozenset()
    if permission in permissions_of(roles):
        return
    if is_mutating(permission) and Role.INSPECTOR in roles:
        raise InspectorReadOnly(permission=permission.value)
    raise PermissionDenied(permission=permission.value)
