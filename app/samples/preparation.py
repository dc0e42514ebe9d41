"""(being built in issue 7)"""

from typing import Any

from sqlalchemy.orm import Session

from app.samples.models import Sample


def prep_section(session: Session, sample: Sample) -> Any:
    """What the sample's page shows of this part (None: nothing to show)."""
    return None
