"""Pages of control charts: the list of charts that have points, and one chart (SVG with centre,
±2s and ±3s, flagged points with their Westgard rules) with the baseline form for QC-rules holders.

A chart is addressed by method code, parameter and QC kind. Method codes hold spaces and slashes
(HJ/T 91-2002), so the code is the path's greedy part and the last two segments are the parameter
and the kind; the baseline is posted to one fixed address with the three as form fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from app.analysis import control_charts, svg_plot
from app.analysis import curve_errors as errors
from app.analysis.models import Method, QcKind
from app.core.auth import DbSession, require
from app.core.errors import DomainError
from app.core.i18n import N_, current_language, source_text
from app.core.labtime import lab_calendar
from app.core.pdf import print_context, render_document
from app.core.permissions import Permission
from app.core.registry import NavItem, add_nav
from app.core.web import attempt, pager_base, render, see_other
from app.people.models import User

router = APIRouter()

BASE = "/charts"
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Small = Annotated[str, Form(max_length=100)]
KIND_NAMES = {
    QcKind.BLANK.value: N_("Method blank"), QcKind.DUPLICATE.value: N_("Duplicate relative deviation (%)"),
    QcKind.SPIKE.value: N_("Spike recovery (%)"), QcKind.CRM.value: N_("Certified reference material"),
    QcKind.CCV.value: N_("Calibration check deviation (%)"), QcKind.CURVE.value: N_("Calibration curve r"),
}
RULE_NAMES = {
    "1-3s": N_("one point beyond 3s"), "2-2s": N_("two in a row beyond 2s on the same side"),
    "R-4s": N_("two in a row more than 4s apart"), "4-1s": N_("four in a row beyond 1s on the same side"),
    "10-x": N_("ten in a row on the same side of the centre"),
}


def show(request: Request, template: str, context: dict[str, Any], *, error: DomainError | None = None,
         block: str | None = None) -> Response:
    full = {"code": "", "reason": "", "kind_names": KIND_NAMES, "rule_names": RULE_NAMES, "kinds": control_charts.KINDS,
            "min_points": control_charts.MIN_BASELINE_POINTS,
            "can_set_baseline": Permission.QC_RULES in getattr(request.state, "permissions", frozenset()),
            **context}
    if error is not None:
        full.update(refused=True, code=error.code, detail=error.message(current_language()))
    return render(request, template, full, block=block, status_code=error.http_status if error else 200)


# ---------------------------------------------------------------- the list


@router.get(BASE, include_in_schema=False)
def chart_list(request: Request, session: DbSession, method: Annotated[str, Query(max_length=60)] = "",
               kind: Annotated[str, Query(pattern=f"^({'|'.join(control_charts.KINDS)})?$")] = "",
               page: PageNo = 1, user: User = require(Permission.ANALYSIS_READ)):
    """Every chart that has points, with its count and baseline (htmx: the results only)."""
    size = request.app.state.settings.page_size
    found = control_charts.list_charts(session, method=method, kind=kind, page=page, size=size)
    params = {"method": method.strip(), "kind": kind}
    return show(request, "charts/list.html", {"page": found, "filters": params,
                                              "pager_base": pager_base(BASE, params)}, block="results")


# ---------------------------------------------------------------- one chart


def _day(session: Session, text: str, *, end: bool, field_zh: str, field_en: str) -> datetime | None:
    """A lab-local date (2026-05-01) as the instant its day starts (or ends)."""
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    try:
        day = datetime.strptime(cleaned, "%Y-%m-%d").date()
    except ValueError:
        raise errors.BaselineChoiceInvalid(minimum=control_charts.MIN_BASELINE_POINTS,
                                           detail=f"{field_en}: {cleaned[:20]}") from None
    moment = datetime.combine(day, time.max if end else time.min, tzinfo=lab_calendar(session).tz)
    return moment.astimezone(UTC)


def _drawn_chart(session: Session, method_code: str, parameter: str, kind: str, since: str,
                 until: str) -> tuple[Method, str, control_charts.Chart, Markup]:
    """The chart the page shows and the printout prints (method, clean kind, points, SVG): one
    reading of the address and the dates, so both draw the same."""
    kind = control_charts.clean_kind(kind)
    method = control_charts.method_by_code(session, method_code)
    start = _day(session, since, end=False, field_zh="起始日期", field_en="From")
    end = _day(session, until, end=True, field_zh="截止日期", field_en="To")
    chart = control_charts.chart(session, method.id, parameter, kind, start, end)
    svg = svg_plot.chart_svg(chart, y_label=str(KIND_NAMES[kind]), title=f"{method.code} {parameter} {kind}")
    return method, kind, chart, svg


def _chart_page(request: Request, session: Session, method_code: str, parameter: str, kind: str, *,
                since: str = "", until: str = "", error: DomainError | None = None,
                form: dict[str, str] | None = None) -> Response:
    method, kind, chart, svg = _drawn_chart(session, method_code, parameter, kind, since, until)
    return show(request, "charts/chart.html", {
        "chart": chart, "svg": svg, "href": control_charts.chart_href(method.code, parameter, kind),
        "filters": {"since": since, "until": until}, "form": form or {"first": str(control_charts.MIN_BASELINE_POINTS),
                                                                      "from": "", "to": ""},
    }, error=error)


# declared before the page: the page's {method_code:path} would take ".../spike.pdf" too
@router.get(BASE + "/{method_code:path}/{parameter}/{kind}.pdf", include_in_schema=False)
def chart_pdf(session: DbSession, method_code: Annotated[str, Path(max_length=60)],
              parameter: Annotated[str, Path(max_length=60)], kind: Annotated[str, Path(max_length=12)],
              since: Annotated[str, Query(max_length=10)] = "", until: Annotated[str, Query(max_length=10)] = "",
              user: User = require(Permission.ANALYSIS_READ)):
    """The chart printed (for the QC file and the inspector): the same SVG, limits and flags."""
    method, kind, chart, svg = _drawn_chart(session, method_code, parameter, kind, since, until)
    # the kind's name has a "%", which the printouts' bilingual _() would take for a placeholder
    data = render_document("charts/chart_pdf.html", {
        **print_context(session), "chart": chart, "svg": svg, "kind_name": str(KIND_NAMES[kind]),
        "rule_names": {rule: source_text(name) for rule, name in RULE_NAMES.items()},
    }, language=current_language())
    name = f"control-chart-{method.code}-{parameter}-{kind}.pdf".replace(" ", "_").replace("/", "-")
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{quote(name)}"'})


@router.get(BASE + "/{method_code:path}/{parameter}/{kind}", include_in_schema=False)
def chart_page(request: Request, session: DbSession, method_code: Annotated[str, Path(max_length=60)],
               parameter: Annotated[str, Path(max_length=60)], kind: Annotated[str, Path(max_length=12)],
               since: Annotated[str, Query(max_length=10)] = "", until: Annotated[str, Query(max_length=10)] = "",
               user: User = require(Permission.ANALYSIS_READ)):
    return _chart_page(request, session, method_code, parameter, kind, since=since, until=until)


@router.post(BASE + "/baseline", include_in_schema=False)
def set_baseline(request: Request, session: DbSession, method: Small = "", parameter: Small = "", kind: Small = "",
                 choice: Small = "first", first: Small = "", date_from: Small = "", date_to: Small = "",
                 user: User = require(Permission.QC_RULES)):
    """A new baseline from the chart's first N points or from a date range."""
    form = {"first": first, "from": date_from, "to": date_to, "choice": choice}
    found = control_charts.method_by_code(session, method)
    kind = control_charts.clean_kind(kind)

    def act() -> Any:
        if choice == "range":
            since = _day(session, date_from, end=False, field_zh="起始日期", field_en="From")
            until = _day(session, date_to, end=True, field_zh="截止日期", field_en="To")
            if since is None and until is None:
                raise errors.BaselineChoiceInvalid(minimum=control_charts.MIN_BASELINE_POINTS, detail="")
            return control_charts.set_baseline_from(session, user, found, parameter, kind, since=since, until=until)
        text = first.strip()
        if not text.isdigit() or not 0 < int(text) <= 100_000:
            raise errors.BaselineChoiceInvalid(minimum=control_charts.MIN_BASELINE_POINTS, detail=f"N = {text[:10]}")
        return control_charts.set_baseline_from(session, user, found, parameter, kind, first=int(text))

    _, error = attempt(session, act)
    if error is not None:
        session.expire_all()
        return _chart_page(request, session, found.code, parameter, kind, error=error, form=form)
    return see_other(request, control_charts.chart_href(found.code, parameter, kind) + "#baseline")


add_nav(NavItem("charts", N_("Control charts"), BASE, Permission.ANALYSIS_READ, 58))
