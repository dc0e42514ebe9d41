"""`lims report ...` commands (issue 9)."""

import typer

report_app = typer.Typer(help="Issued reports: offline verification.", no_args_is_help=True)
