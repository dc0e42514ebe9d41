"""Audit explorer pages: an entity's history with its changes, who did what in a window, and
the chain's status on every page. Mounted before the core viewer's router, so these fixed
addresses are not read as /oversight/audit/{seq}."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from app.core.auth import DbSession, require
from app.core.errors import InvalidInput
from app.core.i18n import N_
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import query_string, render
from app.oversight import explorer
from app.people.models import User

router = APIRouter()

MAX_SEQ = 2**63 - 1
DEFAULT_WINDOW = timedelta(days=7)
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
EntityText = Annotated[str, Path(min_length=1, max_length=64)]
Before = Annotated[int | None, Query(ge=1, le=MAX_SEQ)]


def chain_banner(request: Request, session: Session, user: User) -> explorer.ChainStatus:
    key = explorer.read_audit_key(request.app.state.settings.resolved_audit_key_file)
    return explorer.chain_status_for(session, user, key)


def parse_local(value: str, tz: ZoneInfo, field: str) -> datetime | None:
    """A datetime-local input (lab time) as an aware datetime; '' is None; anything else a 422."""
    text = value.strip()
    if not text:
        return None
    for fmt in LOCAL_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise InvalidInput(detail=f"{field} 不是有效的日期时间 / {field} is not a valid date and time: {text[:40]}")


def local_input(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


@router.get("/oversight/audit/explorer", include_in_schema=False)
def explorer_home(request: Request, session: DbSession, user: User = require(Permission.AUDIT_READ)):
    """The explorer's front page: the chain's status in full and the two ways in."""
    return render(request, "oversight/explorer.html", {"chain": chain_banner(request, session, user)})


@router.get("/oversight/audit/entity", include_in_schema=False)
def entity_lookup(entity_type: Annotated[str, Query(max_length=64)] = "",
                  entity_id: Annotated[str, Query(max_length=64)] = "",
                  user: User = require(Permission.AUDIT_READ)) -> RedirectResponse:
    """The lookup form's GET: to the entity's own address."""
    from urllib.parse import quote

    if not entity_type.strip() or not entity_id.strip():  # nothing to look up: back to the form
        return RedirectResponse("/oversight/audit/explorer", status_code=303)
    return RedirectResponse(f"/oversight/audit/entity/{quote(entity_type.strip(), safe='')}/"
                            f"{quote(entity_id.strip(), safe='')}", status_code=303)


@router.get("/oversight/audit/entity/{entity_type}/{entity_id}", include_in_schema=False)
def entity_page(request: Request, session: DbSession, entity_type: EntityText, entity_id: EntityText,
                before: Before = None, user: User = require(Permission.AUDIT_READ)):
    history = explorer.entity_history(session, user, entity_type, entity_id, before_seq=before,
                                      limit=request.app.state.settings.page_size)
    base = f"/oversight/audit/entity/{entity_type}/{entity_id}"
    older_url = f"{base}?{query_string({}, before=history.older_cursor)}" if history.older_cursor else None
    return render(request, "oversight/explorer_entity.html", {
        "history": history, "older_url": older_url, "paged": before is not None, "base_url": base,
        "chain": chain_banner(request, session, user), "json_text": explorer.json_text,
    })


@router.get("/oversight/audit/activity", include_in_schema=False)
def activity_page(request: Request, session: DbSession, who: Annotated[str, Query(max_length=100)] = "",
                  date_from: Annotated[str, Query(alias="from", max_length=40)] = "",
                  date_to: Annotated[str, Query(alias="to", max_length=40)] = "",
                  action: Annotated[str, Query(max_length=100)] = "", before: Before = None,
                  user: User = require(Permission.AUDIT_READ)):
    """Who did what in a window of lab time; `to` includes its minute. Default: the last 7 days."""
    tz = request.app.state.settings.tz
    start = parse_local(date_from, tz, "from")
    end = parse_local(date_to, tz, "to")
    if end is None:
        end = datetime.now(tz).replace(second=0, microsecond=0)
    if start is None:
        start = end - DEFAULT_WINDOW
    activity = explorer.actor_activity(session, user, who=who, start=start, end=end + timedelta(minutes=1),
                                       action_prefix=action, before_seq=before, limit=100)
    params = {"who": activity.who, "from": local_input(start, tz), "to": local_input(end, tz),
              "action": activity.action_prefix}
    next_url = (f"/oversight/audit/activity?{query_string(params, before=activity.next_cursor)}"
                if activity.next_cursor else None)
    return render(request, "oversight/explorer_activity.html", {
        "activity": activity, "filters": params, "next_url": next_url,
        "filter_url": lambda **changes: "/oversight/audit/activity?" + query_string(params, **changes),
        "chain": chain_banner(request, session, user),
    })


add_nav(NavItem("audit_explorer", N_("Audit explorer"), "/oversight/audit/explorer", Permission.AUDIT_READ, 72))
