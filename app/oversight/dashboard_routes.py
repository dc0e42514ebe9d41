"""The quality manager's dashboard page (quality manager and inspectors)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.auth import DbSession, require
from app.core.i18n import N_, gettext
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import render
from app.oversight import dashboard, explorer, trend_svg
from app.people.models import User

router = APIRouter()


@router.get("/oversight/quality", include_in_schema=False)
def quality_page(request: Request, session: DbSession, user: User = require(Permission.QUALITY_DASHBOARD)):
    view = dashboard.quality_dashboard(session, user)
    charts = [
        (trend, trend_svg.monthly_svg(view.months, [(s.key, str(s.label), s.counts) for s in trend.series],
                                      title=str(trend.title), y_label=gettext("Count")))
        for trend in view.trends
    ]
    key = explorer.read_audit_key(request.app.state.settings.resolved_audit_key_file)
    return render(request, "oversight/quality_dashboard.html", {
        "view": view, "charts": charts, "shown": dashboard.SHOWN,
        "chain": explorer.chain_status(session, key),
    })


add_nav(NavItem("quality_dashboard", N_("Quality dashboard"), "/oversight/quality", Permission.QUALITY_DASHBOARD, 64))
