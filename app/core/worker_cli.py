"""`lims worker`: consumes the job queue in production (issue 9)."""
