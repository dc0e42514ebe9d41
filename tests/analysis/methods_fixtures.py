"""Helpers for the method, MDL and qualification tests: method facts in one line, acts through
the services in their own transaction, and row counts to prove a refusal changed nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.analysis.methods import MethodFacts, ParameterFacts, VersionFacts
from app.analysis.models import MdlStudy, Method, MethodInstrument, MethodParameter, MethodVersion, Qualification
from app.core.audit import AuditEvent
from app.core.db import Database

NH3N = ParameterFacts("NH3-N", "mg/L", "0.025", decimals=3)


def version_facts(*parameters: ParameterFacts, **columns: Any) -> VersionFacts:
    return VersionFacts(parameters=list(parameters or (NH3N,)), **columns)


def method_facts(code: str = "HJ 535-2009", *, parameters: tuple[ParameterFacts, ...] = (NH3N,),
                 name_zh: str = "水质 氨氮的测定 纳氏试剂分光光度法", matrix: str = "water",
                 **columns: Any) -> MethodFacts:
    return MethodFacts(code=code, name_zh=name_zh, name_en="Water quality - ammonia nitrogen (Nessler)",
                       matrix=matrix, version=version_facts(*parameters, **columns))


def with_parameter(facts: MethodFacts, **changes: Any) -> MethodFacts:
    """The facts with the first parameter changed (mdl="0", decimals=None...)."""
    first = replace(facts.version.parameters[0], **changes)
    return replace(facts, version=replace(facts.version, parameters=[first, *facts.version.parameters[1:]]))


def with_version(facts: MethodFacts, **changes: Any) -> MethodFacts:
    return replace(facts, version=replace(facts.version, **changes))


def act(db: Database, service: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one service call in its own unit of work; the returned row stays readable."""
    with db.transaction() as session:
        result = service(session, *args, **kwargs)
        session.flush()
        return result


def counts(db: Database) -> dict[str, int]:
    with db.reading() as session:
        return {table.__name__: session.scalar(select(func.count()).select_from(table)) for table in (
            Method, MethodVersion, MethodParameter, MethodInstrument, MdlStudy, Qualification, AuditEvent)}


def local_noon(db: Database, days_ago: int) -> datetime:
    """Noon, lab local time, `days_ago` days ago (negative: in the future)."""
    day = db.calendar.today() - timedelta(days=days_ago)
    return db.calendar.start_of(day) + timedelta(hours=12)
