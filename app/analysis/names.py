"""The words pages show for analysis states and batch roles: one place, so the worksheet, the
entry grid and the QC page name a batch's state alike."""

from __future__ import annotations

from app.analysis.models import BatchState, PositionRole
from app.core.i18n import N_

BATCH_STATE_NAMES = {
    BatchState.OPEN.value: N_("Open, being laid out"), BatchState.RUNNING.value: N_("Running"),
    BatchState.IMPORTED.value: N_("Results imported"), BatchState.QC_EVALUATED.value: N_("QC evaluated"),
    BatchState.QC_FAILED.value: N_("QC failed"), BatchState.SUBMITTED.value: N_("Submitted"),
    BatchState.CLOSED.value: N_("Closed"),
}
ROLE_NAMES = {
    PositionRole.SAMPLE.value: N_("Sample"), PositionRole.METHOD_BLANK.value: N_("Method blank"),
    PositionRole.CALIBRATION_BLANK.value: N_("Calibration blank"), PositionRole.DUPLICATE.value: N_("Duplicate"),
    PositionRole.SPIKE.value: N_("Matrix spike"), PositionRole.CRM.value: N_("Certified reference material"),
    PositionRole.CCV.value: N_("Calibration check (CCV)"),
}
