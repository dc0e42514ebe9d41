"""Display names of sample kinds, states and matrices (translated where shown), and who may know
which samples are field QC: one place for the sample pages, the task page and the phone page.

Field blanks and duplicates are coded like ordinary samples so the analyst is blind to them; the
link is visible to those who plan, register, take or judge samples (DOMAIN.md §3)."""

from __future__ import annotations

from app.core.i18n import N_
from app.core.permissions import Permission
from app.samples.models import ContainerState, SampleKind, SampleState

QC_READERS = frozenset({Permission.SITES_MANAGE, Permission.SAMPLES_REGISTER, Permission.FIELD_RECORD,
                        Permission.SITES_APPROVE, Permission.AUDIT_READ})

KIND_NAMES = {
    SampleKind.ROUTINE.value: N_("Routine sample"),
    SampleKind.FIELD_BLANK.value: N_("Field blank"),
    SampleKind.TRANSPORT_BLANK.value: N_("Transport blank"),
    SampleKind.FIELD_DUPLICATE.value: N_("Field duplicate"),
    SampleKind.CLIENT.value: N_("Client sample"),
}
# The short words ("Registered", "Received", "Rejected", "Prepared") already name other things in
# the catalogue (an instrument's registration, a receipt time, a change request's refusal...).
STATE_NAMES = {
    SampleState.REGISTERED.value: N_("Registered, not yet sampled"),
    SampleState.COLLECTED.value: N_("Collected"),
    SampleState.IN_TRANSIT.value: N_("In transit"),
    SampleState.RECEIVED.value: N_("Received at the lab"),
    SampleState.CONDITIONALLY_RECEIVED.value: N_("Conditionally received"),
    SampleState.REJECTED.value: N_("Rejected at receipt"),
    SampleState.IN_STORAGE.value: N_("In storage"),
    SampleState.IN_PREPARATION.value: N_("In preparation"),
    SampleState.PREPARED.value: N_("Prepared, ready for analysis"),
    SampleState.IN_ANALYSIS.value: N_("In analysis"),
    SampleState.RESULTS_ENTERED.value: N_("Results entered"),
    SampleState.DISPOSED.value: N_("Disposed of"),
    SampleState.CANCELLED.value: N_("Cancelled"),
}
CONTAINER_STATE_NAMES = {
    ContainerState.PREPARED.value: N_("Prepared, not yet issued"),
    ContainerState.ISSUED.value: N_("Issued"),
    ContainerState.FILLED.value: N_("Filled"),
    ContainerState.RECEIVED.value: N_("Received at the lab"),
    ContainerState.REJECTED.value: N_("Rejected at receipt"),
    ContainerState.EMPTIED.value: N_("Emptied"),
    ContainerState.DISPOSED.value: N_("Disposed of"),
}
MATRIX_NAMES = {"water": N_("Water"), "air": N_("Air"), "soil": N_("Soil"), "other": N_("Other")}
