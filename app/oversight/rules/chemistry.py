"""Anomaly rules: (being written)."""
