"""Display labels for keys stored in rows: roles, role-grant statuses, signature meanings.

Templates translate these with `_(g.role)`, `_(g.status)`, `_(sig.meaning)`; the extractor
cannot see a variable's values, so each key is listed here once with `N_` to put it in the
catalogue (a test checks that every Role and SignatureMeaning value is listed).
"""

from __future__ import annotations

from babel.support import LazyProxy

from app.core.i18n import N_

# app.core.roles.Role (DOMAIN.md §2)
ROLE_LABELS: dict[str, LazyProxy] = {
    "sampler": N_("sampler"),
    "custodian": N_("custodian"),
    "analyst": N_("analyst"),
    "checker": N_("checker"),
    "reviewer": N_("reviewer"),
    "signatory": N_("signatory"),
    "quality_manager": N_("quality_manager"),
    "technical_manager": N_("technical_manager"),
    "inspector": N_("inspector"),
    "admin": N_("admin"),
    "lab_head": N_("lab_head"),
}

# app.people.models.RoleGrant.status
GRANT_STATUS_LABELS: dict[str, LazyProxy] = {
    "proposed": N_("proposed"),
    "active": N_("active"),
    "rejected": N_("rejected"),
    "ended": N_("ended"),
}

# app.core.signatures.SignatureMeaning
SIGNATURE_MEANING_LABELS: dict[str, LazyProxy] = {
    "sampled": N_("sampled"),
    "received": N_("received"),
    "prepared": N_("prepared"),
    "analysed": N_("analysed"),
    "compiled": N_("compiled"),
    "checked": N_("checked"),
    "reviewed": N_("reviewed"),
    "approved": N_("approved"),
    "issued": N_("issued"),
    "confirmed": N_("confirmed"),
    "witnessed": N_("witnessed"),
    "performed": N_("performed"),
}
