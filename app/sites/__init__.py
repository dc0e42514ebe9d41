"""Monitoring sites (点位), their approved versions and change requests; monitoring plans and sampling tasks."""
