"""`lims archive ...` commands (issue 9)."""

import typer

archive_app = typer.Typer(help="Record packages of issued reports.", no_args_is_help=True)
