"""Samples: registration and numbering, containers and labels, the field record (GPS, photos, field tests) and, later, custody, receipt, storage and preparation."""
