"""`python -m bench` (what `make bench` runs)."""

from bench.runner import main

raise SystemExit(main())
