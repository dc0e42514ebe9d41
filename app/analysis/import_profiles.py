"""Import profiles: how an instrument's export maps to samples, parameters and units.

Two kinds. Built-in profiles carry a parser in code (`import_parsers.BUILTIN_PARSERS`) and their
rows are made by `ensure_builtin_profiles` (idempotent); they cannot be edited. Generic profiles
keep a column mapping (canonical JSON, checked by `import_parsers.validate_mapping`) that the
technical manager sets up in the UI and may change; ImportProfile is not append-only, so every
change writes the mapping before and after to the audit trail, and each import keeps the raw file,
so what a result came from never depends on today's mapping.

Parameter names in files are matched to the batch's parameters case- and space-insensitively,
then through aliases: the profile's own, then the lab-wide ones below (a file says "氨氮" or
"Chloride" where the lab's code is NH3-N or Cl-).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.analysis import import_errors as errors
from app.analysis.codes import clean_code
from app.analysis.import_parsers import normalise, validate_mapping
from app.analysis.models import ImportProfile
from app.core import audit
from app.core.canonical import canonical_json
from app.core.db import utcnow
from app.core.permissions import Permission, ensure
from app.people.models import User

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,39}$")

# Names instrument software and analysts write for the lab's parameter codes (the preservation
# table's codes: NH3-N, Cl-, NO3-, SO42-...). Element with mass: the usual quantitation isotope.
COMMON_ALIASES: dict[str, str] = {
    "氨氮": "NH3-N", "NH3N": "NH3-N", "NH3-N(mg/L)": "NH3-N", "Ammonia-N": "NH3-N", "Ammonia nitrogen": "NH3-N",
    "总磷": "TP", "Total phosphorus": "TP", "总氮": "TN", "Total nitrogen": "TN",
    "化学需氧量": "COD", "COD(Cr)": "COD", "CODcr": "COD",
    "Fluoride": "F-", "氟化物": "F-", "F": "F-",
    "Chloride": "Cl-", "氯化物": "Cl-", "Cl": "Cl-",
    "Nitrate": "NO3-", "硝酸盐": "NO3-", "硝酸根": "NO3-", "NO3": "NO3-",
    "Sulfate": "SO42-", "Sulphate": "SO42-", "硫酸盐": "SO42-", "硫酸根": "SO42-", "SO4": "SO42-", "SO4 2-": "SO42-",
    "As 75": "As", "Cd 111": "Cd", "Cd 114": "Cd", "Pb 208": "Pb", "Cu 63": "Cu", "Zn 66": "Zn", "Cr 52": "Cr",
    "Ni 60": "Ni", "Mn 55": "Mn", "Se 78": "Se", "Hg 202": "Hg", "Sb 121": "Sb", "Tl 205": "Tl", "Be 9": "Be",
    "铅": "Pb", "镉": "Cd", "砷": "As", "铜": "Cu", "锌": "Zn", "汞": "Hg",
}


@dataclass(frozen=True)
class BuiltinProfile:
    code: str
    name: str
    builtin: str  # key of its parser
    file_format: str
    note: str
    dilution_applied: bool = True  # the software already multiplied the result by the file's dilution


BUILTINS: tuple[BuiltinProfile, ...] = (
    BuiltinProfile("AGILENT-ICPMS", "Agilent ICP-MS MassHunter 4.x 批处理表（Batch Table CSV）",
                   "agilent_masshunter_icpms", "csv",
                   "两行表头：元素通道行（208 Pb [He]）与列名行（Sample Name、Acq. Date-Time、Dil.、Conc. [ ppb ]）"),
    BuiltinProfile("THERMO-IC", "Thermo Chromeleon 7 离子色谱汇总报告（Summary CSV）",
                   "thermo_chromeleon_ic", "csv",
                   "每个组分一张表：Peak Name/组分、No.、Injection Name、Inj. Date/Time、Dil. Factor、Amount"),
)
BUILTIN_BY_CODE = {b.code: b for b in BUILTINS}


def mapping_of(profile: ImportProfile) -> dict[str, Any]:
    return json.loads(profile.mapping or "{}")


def dilution_applied(profile: ImportProfile) -> bool:
    """Whether the file's results already include its dilution factor (then it is not applied again)."""
    builtin = next((b for b in BUILTINS if b.builtin == profile.builtin), None)
    if builtin is not None:
        return builtin.dilution_applied
    return bool(mapping_of(profile).get("dilution_applied", False))


def aliases_of(profile: ImportProfile) -> dict[str, str]:
    """Normalised name in the file → parameter code; the profile's own aliases win."""
    merged = {normalise(k): v for k, v in COMMON_ALIASES.items()}
    merged.update({normalise(k): v for k, v in mapping_of(profile).get("aliases", {}).items()})
    return merged


# ---------------------------------------------------------------- lookups


def profile_by_code(session: Session, code: str) -> ImportProfile:
    cleaned = clean_code(code)
    profile = session.scalars(select(ImportProfile).where(ImportProfile.code == cleaned)).first() if cleaned else None
    if profile is None:
        raise errors.ProfileNotFound(which=cleaned[:40] or "—")
    return profile


def list_profiles(session: Session, *, active_only: bool = False) -> list[ImportProfile]:
    """Every profile, built-in first (few rows: a lab has a handful of instruments)."""
    query = select(ImportProfile).order_by(ImportProfile.builtin == "", ImportProfile.code)
    if active_only:
        query = query.where(ImportProfile.active.is_(True))
    return list(session.scalars(query))


def choices(session: Session) -> list[tuple[str, str]]:
    """(code, name) of the profiles an analyst can import with: built-ins (even before their rows
    exist) and active generic ones."""
    rows = {p.code: p for p in list_profiles(session)}
    found = [(b.code, b.name) for b in BUILTINS if b.code not in rows or rows[b.code].active]
    found += [(p.code, p.name) for p in rows.values() if not p.builtin and p.active]
    return found


# ---------------------------------------------------------------- built-ins


def ensure_builtin_profiles(session: Session, actor: User) -> list[ImportProfile]:
    """The rows of the built-in profiles, made once (by `actor`, who is recorded as their author)."""
    existing = {p.code: p for p in session.scalars(select(ImportProfile).where(
        ImportProfile.code.in_([b.code for b in BUILTINS])))}
    made = []
    for builtin in BUILTINS:
        if builtin.code in existing:
            made.append(existing[builtin.code])
            continue
        row = ImportProfile(code=builtin.code, name=builtin.name, builtin=builtin.builtin,
                            file_format=builtin.file_format, mapping="{}", active=True, created_at=utcnow(),
                            created_by_id=actor.id)
        session.add(row)
        session.flush()
        audit.append(session, actor, "import_profile.builtin_added", "import_profile", row.id, None,
                     {"code": row.code, "builtin": row.builtin})
        made.append(row)
    return made


def usable_profile(session: Session, actor: User, code: str) -> ImportProfile:
    """The active profile `code`; a built-in one gets its row on first use."""
    cleaned = clean_code(code)
    if cleaned in BUILTIN_BY_CODE:
        ensure_builtin_profiles(session, actor)
    profile = profile_by_code(session, cleaned)
    if not profile.active:
        raise errors.ProfileInactive(which=profile.code)
    return profile


# ---------------------------------------------------------------- generic profiles


def _snapshot(profile: ImportProfile) -> dict[str, Any]:
    return {"code": profile.code, "name": profile.name, "file_format": profile.file_format,
            "mapping": mapping_of(profile), "active": profile.active}


def _checked(name: str, mapping: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    cleaned_name = (name or "").strip()
    if not cleaned_name or len(cleaned_name) > 200:
        raise errors.InvalidMapping(field="name", detail_zh="请填写不超过 200 字的名称",
                                    detail_en="give a name of at most 200 characters")
    checked = validate_mapping(mapping)
    return cleaned_name, checked


def create_profile(session: Session, actor: User, code: str, name: str, mapping: dict[str, Any]) -> ImportProfile:
    """A generic CSV/XLSX profile (technical manager)."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    cleaned = clean_code(code)
    if not CODE_RE.match(cleaned):
        raise errors.InvalidMapping(field="code", detail_zh="代码为 2–40 位大写字母、数字、- 或 _",
                                    detail_en="the code is 2–40 capital letters, digits, - or _")
    if cleaned in BUILTIN_BY_CODE or session.scalars(
            select(ImportProfile.id).where(ImportProfile.code == cleaned)).first() is not None:
        raise errors.DuplicateProfile(which=cleaned)
    cleaned_name, checked = _checked(name, mapping)
    profile = ImportProfile(code=cleaned, name=cleaned_name, builtin="", file_format=checked["format"],
                            mapping=canonical_json(checked), active=True, created_at=utcnow(),
                            created_by_id=actor.id)
    session.add(profile)
    session.flush()
    audit.append(session, actor, "import_profile.created", "import_profile", profile.id, None, _snapshot(profile))
    return profile


def update_profile(session: Session, actor: User, profile: ImportProfile, name: str, mapping: dict[str, Any], *,
                   active: bool = True) -> ImportProfile:
    """A changed mapping for the next imports; earlier imports keep their raw files and results."""
    ensure(session, actor, Permission.METHODS_MANAGE)
    if profile.builtin:
        raise errors.BuiltinProfileReadOnly(which=profile.code)
    cleaned_name, checked = _checked(name, mapping)
    before = _snapshot(profile)
    profile.name, profile.file_format = cleaned_name, checked["format"]
    profile.mapping, profile.active = canonical_json(checked), active
    session.flush()
    audit.append(session, actor, "import_profile.updated", "import_profile", profile.id, before, _snapshot(profile))
    return profile
