"""One module per scenario; each registers itself with `bench.registry.register` on import."""
