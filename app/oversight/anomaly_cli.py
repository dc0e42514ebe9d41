"""`lims anomalies ...` (being written)."""

from __future__ import annotations

import typer

anomalies_app = typer.Typer(help="Anomaly detection: scan the records for anomalous or fabricated data.",
                            no_args_is_help=True)
