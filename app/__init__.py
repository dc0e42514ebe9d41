"""EnviroLIMS: a laboratory information management system for environmental monitoring."""

__version__ = "0.1.0"
