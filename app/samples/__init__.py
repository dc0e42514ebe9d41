"""Samples: registration, containers and labels, the field record (GPS, photos, field tests),
custody, receipt, holding-time clocks, storage, retention and disposal, and preparation."""
