"""Imports every table so that metadata (Alembic, tests) sees the whole schema."""

from app.analysis.models import (  # noqa: F401
    AnalysisBatch,
    AnalysisResult,
    BatchCurve,
    BatchPosition,
    CalibrationCurve,
    CalibrationPoint,
    ControlBaseline,
    CorrectiveAction,
    ImportProfile,
    LimitSet,
    LimitValue,
    MdlStudy,
    Method,
    MethodInstrument,
    MethodParameter,
    MethodVersion,
    NotAnalysed,
    QcEvaluation,
    Qualification,
    ResultImport,
    SiteLimitSet,
)
from app.core.audit import AuditCheckpoint, AuditEvent  # noqa: F401
from app.core.codes import CodeCounter  # noqa: F401
from app.core.db import metadata  # noqa: F401
from app.core.files import StoredFile  # noqa: F401
from app.core.idempotency import IdempotencyRecord  # noqa: F401
from app.core.job_queue import Job  # noqa: F401
from app.core.signatures import ElectronicSignature  # noqa: F401
from app.instruments.models import (  # noqa: F401
    CalibrationAcceptance,
    CalibrationRecord,
    ImpactAssessment,
    Instrument,
    InstrumentAttachment,
    InstrumentUse,
    IntermediateCheck,
    MaintenanceRecord,
    ServiceChange,
)
from app.oversight.models import (  # noqa: F401
    AlarmDisposition,
    AlarmSample,
    AnomalyAlarm,
    AnomalyRuleSetting,
    AnomalyScan,
    AuditReview,
    FindingResponse,
    Inspection,
    InspectionFinding,
    InterferenceAttachment,
    InterferenceRecord,
    InterferenceSupplement,
    InterferenceTarget,
    StationImport,
    StationReading,
)
from app.people.models import ApiToken, Laboratory, RoleGrant, User  # noqa: F401
from app.reference_materials.models import (  # noqa: F401
    CertifiedValue,
    LotStatusChange,
    MaterialLot,
    MaterialUse,
    ReagentLot,
    ReferenceMaterial,
    SolutionComponent,
    SolutionDevice,
    StandardSolution,
    StockUnit,
)
from app.reports.models import (  # noqa: F401
    AccreditationCertificate,
    AccreditationItem,
    Report,
    ReportSample,
    ReviewAct,
    SignatoryScope,
)
from app.samples.lab_models import (  # noqa: F401
    CustodyEvent,
    CustodyEventContainer,
    Delivery,
    DeliveryExpected,
    DeliveryScan,
    DisposalRequest,
    DisposalRequestSample,
    HoldingClock,
    HoldingDeviation,
    PrepBatch,
    PrepBatchItem,
    PrepBatchMaterial,
    ReceiptCheck,
    RetentionRule,
    SampleReceipt,
    Shipment,
    ShipmentScan,
    StorageLocation,
)
from app.samples.models import (  # noqa: F401
    Container,
    FieldEntry,
    PreservationRule,
    Sample,
    SampleNumberCounter,
    SampleParameter,
    SamplePhoto,
)
from app.sites.models import (  # noqa: F401
    MonitoringPlan,
    PlanLine,
    SamplingTask,
    Site,
    SiteChangeRequest,
    SiteVersion,
    SiteVersionParameter,
)
