"""Factories for the sites tests, and for other domains' tests that need a site: a proposal in one
line, and `make_site`, which proposes a site as the technical manager and approves it as the
quality manager through the service (by default as if both happened a year ago, so samples taken
in the past hours or days find the site active)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from unittest import mock

from sqlalchemy.orm import Session

from app.core.db import Database, utcnow
from app.people.models import User
from app.sites import service
from app.sites.models import Site, SiteChangeRequest

D = Decimal
DEFAULT_PARAMETERS = (("pH", "monthly"), ("COD", "monthly"), ("NH3-N", "monthly"), ("TP", "quarterly"))
DEFAULT_REF = "环监字〔2026〕12号"


def proposal(**changes) -> service.SiteProposal:
    """A surface-water section on the Huangpu river with four parameters; change any field."""
    fields = {
        "name_zh": "黄浦江松浦大桥断面", "name_en": "Huangpu River, Songpu Bridge", "kind": "surface_water",
        "latitude": D("30.9543210"), "longitude": D("121.4567890"), "water_body": "river", "basin": "黄浦江",
        "district": "松江区", "department": "市生态环境局监测处", "parameters": list(DEFAULT_PARAMETERS),
    }
    fields.update(changes)
    return service.SiteProposal(**fields)


@contextmanager
def decided_at(moment: datetime | None) -> Iterator[None]:
    """The sites service's clock set to `moment` (None: the real clock): a site approved in the
    past, as the no-retroactive-change rule would never allow today."""
    if moment is None:
        yield
        return
    with mock.patch.object(service, "utcnow", lambda: moment):
        yield


@contextmanager
def reading(db: Database) -> Iterator[Session]:
    """A read session whose rows stay readable after it ends (detached, not expired)."""
    with db.session(write=False) as session:
        try:
            yield session
        finally:
            session.expunge_all()
            session.rollback()


def make_site(db: Database, actor_tm: User, actor_qm: User, code: str = "WS01", *,
              parameters: Sequence[tuple[str, str]] = DEFAULT_PARAMETERS,
              since: datetime | None | bool = True, decision_ref: str = DEFAULT_REF, **fields) -> Site:
    """An active site: proposed by `actor_tm`, approved by `actor_qm`. `since` is when both
    happened: True (the default) a year ago, a datetime, or None for now. Other fields as in
    `proposal()`."""
    moment = utcnow() - timedelta(days=365) if since is True else since or None
    with decided_at(moment), db.transaction() as session:
        request = service.propose_site(session, actor_tm, code=code, reason="新设监测断面",
                                       proposal=proposal(parameters=list(parameters), **fields))
        service.decide_change(session, actor_qm, request, approve=True, decision_ref=decision_ref)
        site = session.get(Site, request.site_id)
    return site


def change_site(db: Database, actor_tm: User, actor_qm: User, site: Site, *, kind: str = "change",
                reason: str = "断面位置调整", decision_ref: str = "环监字〔2026〕30号",
                effective_from: datetime | None = None, at: datetime | None = None, **fields) -> SiteChangeRequest:
    """Propose and approve one change of `site` (a `change` with `fields` over the default
    proposal, or suspend / reactivate / decommission), decided at `at` (default now)."""
    with decided_at(at), db.transaction() as session:
        site = session.get(Site, site.id)
        change = proposal(**fields) if kind in ("change", "create") else None
        request = service.propose_change(session, actor_tm, site, kind=kind, proposal=change, reason=reason)
        return service.decide_change(session, actor_qm, request, approve=True, decision_ref=decision_ref,
                                     effective_from=effective_from)
