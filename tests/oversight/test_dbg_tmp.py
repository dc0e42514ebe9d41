from sqlalchemy import select
from tests.oversight.test_demo import *  # noqa
from app.oversight.models import AnomalyAlarm, AlarmSample
from app.analysis.models import AnalysisResult

def test_dbg(oversight_db):
    with oversight_db.db.reading() as session:
        for a in session.scalars(select(AnomalyAlarm).where(AnomalyAlarm.rule_code == "A05")):
            print("DBG", a.summary_en)
        vals = session.execute(select(AnalysisResult.value, AnalysisResult.below_mdl, AnalysisResult.batch_id).where(AnalysisResult.parameter == "NH3-N", AnalysisResult.sample_id.is_not(None))).all()
        print("DBGV", [(round(float(v),3), b, bid) for v, b, bid in vals])
