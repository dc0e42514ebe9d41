"""The scenario registry: a name, a target ratio, and how to prepare and time each side.

A side is a function `(BenchContext) -> Prepared`. It does its setup against `ctx.db` (a freshly
migrated scratch database that no other side touches) and returns the callable to time, so setup
never counts. A `fingerprint` of the result lets the runner check that ours and the baseline did
the same work (e.g. the same chain head), which keeps a baseline honest.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.db import Database


@dataclass(frozen=True)
class BenchContext:
    db: Database
    size: int  # number of items the scenario works on (events, samples, ...)


def _same(result: Any) -> Any:
    return result


@dataclass
class Prepared:
    timed: Callable[[], Any]
    fingerprint: Callable[[Any], Any] = field(default=_same)


Side = Callable[[BenchContext], Prepared]


@dataclass(frozen=True)
class Scenario:
    name: str
    target: float  # ours/baseline must stay at or below this
    ours: Side
    baseline: Side
    default_size: int
    description: str = ""


_SCENARIOS: dict[str, Scenario] = {}


def register(
    name: str,
    *,
    target: float,
    ours: Side,
    baseline: Side,
    default_size: int,
    description: str = "",
) -> Scenario:
    if name in _SCENARIOS:
        raise ValueError(f"benchmark scenario {name!r} registered twice")
    scenario = Scenario(name, target, ours, baseline, default_size, description)
    _SCENARIOS[name] = scenario
    return scenario


def discover() -> dict[str, Scenario]:
    """Import every module in bench.scenarios; returns the scenarios by name, in name order."""
    import bench.scenarios as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(sorted(_SCENARIOS.items()))
