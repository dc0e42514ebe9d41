"""Reports: review, issue, verification and archive (issue 9)."""

from app.core.registry import on_samples_changed


def _resync_reports(session, actor, sample_ids):  # noqa: ANN001, ANN202 - the registry's listener shape
    """Signed results changed under reports in review: their stored state follows the
    signatures that still hold (the worklists filter on it)."""
    from app.reports.review import resync_reports_of_samples

    return resync_reports_of_samples(session, actor, sample_ids)


on_samples_changed("reports", _resync_reports)
