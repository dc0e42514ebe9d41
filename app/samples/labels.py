"""Container labels: one per container, its barcode encoding the container's own barcode (what
the sampler scans in the field and the custodian at receipt), with the sample number, the site,
the preservation group with its parameters, the preservative and the sampling day. Printed on
50 x 30 mm thermal labels or A4 sheets of 24, starting at any position of a partly used sheet.

The label does not say whether a sample is a field blank or duplicate: QC samples are blind to
the analyst (DOMAIN.md §3), and the label travels with the sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import i18n
from app.core.barcodes import A4_SHEET, Label, LabelFormat, THERMAL_50x30, render_labels
from app.core.errors import InvalidInput
from app.samples.models import Container, Sample
from app.samples.registration import containers_of
from app.sites.models import Site, SiteVersion

LABEL_FORMATS: dict[str, LabelFormat] = {"thermal": THERMAL_50x30, "a4": A4_SHEET}
MAX_LABELS = 2000


class NoContainers(InvalidInput):
    code = "no_containers_to_label"
    message_zh = "所选样品没有需要贴标签的容器。"
    message_en = "The chosen samples have no containers to label."


class TooManyLabels(InvalidInput):
    code = "too_many_labels"
    message_zh = "一次最多打印 {limit} 张标签（本次 {count} 张）。"
    message_en = "At most {limit} labels can be printed at once (this was {count})."


def label_format(name: str) -> LabelFormat:
    try:
        return LABEL_FORMATS[name]
    except KeyError:
        raise InvalidInput(detail=f"format must be one of {', '.join(LABEL_FORMATS)}") from None


def site_names(session: Session, site_ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """(code, name zh, name en) of each site in its current version: one query."""
    ids = sorted({i for i in site_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(
        select(Site.id, Site.code, SiteVersion.name_zh, SiteVersion.name_en)
        .outerjoin(SiteVersion, SiteVersion.id == Site.current_version_id).where(Site.id.in_(ids))).all()
    return {row.id: (row.code, row.name_zh or "", row.name_en or "") for row in rows}


def _day(day: date) -> str:
    return day.isoformat()


def container_label(sample: Sample, container: Container, of: int, site: tuple[str, str, str] | None) -> Label:
    """The label of one container of `sample` (`of` containers in all)."""
    zh = i18n.is_chinese()
    if site is not None:
        where = f"{site[0]} {i18n.pick(site[1], site[2])}".strip()
    else:
        where = sample.location_text or sample.client_name
    parameters = " ".join(json.loads(container.parameters or "[]"))
    volume = f" {container.volume_ml}mL" if container.volume_ml else ""
    preservative = i18n.pick(container.preservative_zh, container.preservative_en) or ("无" if zh else "none")
    lines = (
        where[:40],
        f"{container.container_type}{volume} · {parameters}"[:48],
        (f"保存：{preservative}" if zh else f"Pres.: {preservative}")[:48],
        (f"采样日期 {_day(sample.scheduled_on)}" if zh else f"Sampling {_day(sample.scheduled_on)}"),
    )
    return Label(code=container.barcode, title=f"{sample.sample_no}  {container.position}/{of}", lines=lines)


def container_labels(session: Session, samples: Sequence[Sample]) -> list[Label]:
    """One label per container of `samples`, in sample order then label order (two queries)."""
    containers = containers_of(session, [s.id for s in samples])
    sites = site_names(session, [s.site_id for s in samples if s.site_id is not None])
    labels = []
    for sample in samples:
        mine = containers.get(sample.id, [])
        labels += [container_label(sample, c, len(mine), sites.get(sample.site_id)) for c in mine]
    return labels


def labels_pdf(session: Session, samples: Sequence[Sample], fmt: str = "thermal", start: int = 1) -> bytes:
    """The labels of `samples` as a PDF; `start` is the first free position (1-based) of the
    first A4 sheet."""
    layout = label_format(fmt)
    labels = container_labels(session, samples)
    if not labels:
        raise NoContainers()
    if len(labels) > MAX_LABELS:
        raise TooManyLabels(limit=MAX_LABELS, count=len(labels))
    return render_labels(labels, layout, start_at=start - 1)


def samples_by_numbers(session: Session, sample_nos: Sequence[str]) -> list[Sample]:
    """The samples named, in the order named (unknown numbers refused together)."""
    from app.samples.errors import SampleNotFound

    wanted = [n.strip() for n in sample_nos if n and n.strip()]
    if not wanted:
        return []
    found = {s.sample_no.upper(): s for s in session.scalars(
        select(Sample).where(Sample.sample_no.in_(set(wanted) | {w.upper() for w in wanted})))}
    missing = [n for n in wanted if n.upper() not in found]
    if missing:
        raise SampleNotFound(sample_no="、".join(missing[:5])[:200])
    seen: dict[str, Sample] = {}
    for n in wanted:
        seen.setdefault(n.upper(), found[n.upper()])
    return list(seen.values())


def samples_of_task_code(session: Session, task_code: str) -> list[Sample]:
    """The samples of a task (TaskNotFound for an unknown code), in number order."""
    from app.sites.plans import task_by_code

    task = task_by_code(session, task_code)
    return list(session.scalars(select(Sample).where(Sample.task_id == task.id).order_by(Sample.sample_no)))
