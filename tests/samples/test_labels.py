"""Container labels: one per container with the sample number, site, group, preservative and
day; rendered on thermal labels and A4 sheets (from a start position), and the printed barcode
decodes back to the container's barcode."""

from __future__ import annotations

import pytest

from app.core.barcodes import A4_SHEET
from app.core.i18n import use_language
from app.samples import labels
from app.samples.models import SampleKind
from tests.core.test_barcodes import CODE128, cell, decoded, pdf_info, pdf_pages


def test_one_label_per_container_with_what_the_sampler_needs(db, dispatched_task, count_queries):
    d = dispatched_task
    with count_queries() as q, db.reading() as session, use_language("zh_CN"):
        made = labels.container_labels(session, d.samples)
    assert q.count == 2  # containers, site names
    assert len(made) == 9
    first = made[0]
    sample = d.samples[0]
    assert first.code == d.containers[sample.id][0].barcode
    assert first.title == f"{sample.sample_no}  1/3"
    assert first.lines[0] == "WS01 松花江大桥断面"
    assert first.lines[1] == "G 1000mL · COD NH3-N TP"
    assert first.lines[2].startswith("保存：H2SO4")
    assert first.lines[3] == f"采样日期 {d.task.scheduled_on.isoformat()}"
    # blind: nothing on a label tells a field blank or duplicate from the routine sample
    blank = d.of_kind(SampleKind.FIELD_BLANK)[0]
    blank_label = next(label for label in made if label.title.startswith(blank.sample_no))
    assert "blank" not in " ".join(blank_label.lines).lower() and "空白" not in " ".join(blank_label.lines)
    with db.reading() as session, use_language("en"):
        english = labels.container_labels(session, [d.routine])
    assert english[0].lines[0] == "WS01 Songhua River Bridge" and english[0].lines[3].startswith("Sampling ")


def test_thermal_labels_scan_back_to_their_container_barcodes(db, dispatched_task, tmp_path):
    with db.reading() as session:
        data = labels.labels_pdf(session, [dispatched_task.routine], "thermal")
    pages = pdf_pages(data, tmp_path, "thermal")
    assert len(pages) == 3
    for page, barcode in zip(pages, dispatched_task.barcodes(), strict=True):
        assert (CODE128, barcode) in decoded(page)


def test_a4_sheet_from_a_start_position_scans_back(db, dispatched_task, tmp_path):
    with db.reading() as session:
        data = labels.labels_pdf(session, dispatched_task.samples, "a4", start=23)
    pages_count, _size = pdf_info(data, tmp_path)
    assert pages_count == 2  # positions 23 and 24 of the first sheet, then 7 on the second
    pages = pdf_pages(data, tmp_path, "a4")
    barcodes = [c.barcode for s in dispatched_task.samples for c in dispatched_task.containers[s.id]]
    assert decoded(cell(pages[0], 21)) == set()
    assert (CODE128, barcodes[0]) in decoded(cell(pages[0], 22))
    assert (CODE128, barcodes[1]) in decoded(cell(pages[0], 23))
    assert (CODE128, barcodes[2]) in decoded(cell(pages[1], 0))
    assert (CODE128, barcodes[-1]) in decoded(cell(pages[1], 6))
    assert A4_SHEET.per_page == 24


@pytest.mark.parametrize("fmt, start, code", [("zebra", 1, "invalid_input"), ("a4", 25, "invalid_label_position"),
                                              ("a4", 0, "invalid_label_position")])
def test_bad_format_or_position_is_refused(db, dispatched_task, fmt, start, code):
    with db.reading() as session, pytest.raises(Exception) as caught:
        labels.labels_pdf(session, [dispatched_task.routine], fmt, start=start)
    assert caught.value.code == code


def test_samples_by_numbers_and_by_task(db, dispatched_task):
    from app.samples.errors import SampleNotFound

    numbers = [s.sample_no for s in dispatched_task.samples]
    with db.reading() as session:
        assert [s.sample_no for s in labels.samples_by_numbers(session, [numbers[1].lower(), numbers[0], " "])] \
            == [numbers[1], numbers[0]]
        assert [s.sample_no for s in labels.samples_of_task_code(session, dispatched_task.task.code)] == numbers
        with pytest.raises(SampleNotFound):
            labels.samples_by_numbers(session, [numbers[0], "WS01-000000-999"])
