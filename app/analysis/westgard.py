"""Westgard rules over a Shewhart chart's points (pure; no database).

A point carries the rules it completes: 2-2s is flagged on the second of the two points, 4-1s
on the fourth, 10-x on the tenth, so a run that goes on keeps flagging each new point that
extends it. Distances are compared as `|x − centre| > k·s` on the exact Decimals (no division,
no floats), and "beyond" is strict: a point exactly on +2s is not beyond it.

R-4s is read within consecutive pairs: two neighbouring points on opposite sides of the mean
whose range exceeds 4s (Westgard's random-error rule applied across runs, as charting software
does when each run has one control result).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

RULE_1_3S = "1-3s"
RULE_2_2S = "2-2s"
RULE_R_4S = "R-4s"
RULE_4_1S = "4-1s"
RULE_10_X = "10-x"
RULES = (RULE_1_3S, RULE_2_2S, RULE_R_4S, RULE_4_1S, RULE_10_X)


def _side(deviation: Decimal, limit: Decimal) -> int:
    """+1 beyond +limit, −1 beyond −limit, 0 within."""
    if deviation > limit:
        return 1
    if deviation < -limit:
        return -1
    return 0


def _same_side_run(sides: Sequence[int], end: int, length: int) -> bool:
    """The `length` points ending at `end` all lie beyond the same limit (same non-zero side)."""
    if end + 1 < length:
        return False
    window = sides[end + 1 - length:end + 1]
    return window[0] != 0 and all(s == window[0] for s in window)


def westgard_flags(values: Sequence[Decimal], centre: Decimal, sd: Decimal) -> list[frozenset[str]]:
    """The Westgard rules each point completes, in the order of `values` (run order)."""
    if sd <= 0:
        raise ValueError("a control chart needs a positive standard deviation")
    deviations = [v - centre for v in values]
    one = [_side(d, sd) for d in deviations]
    two = [_side(d, 2 * sd) for d in deviations]
    mean_side = [_side(d, Decimal(0)) for d in deviations]
    flags: list[frozenset[str]] = []
    for i, d in enumerate(deviations):
        found: set[str] = set()
        if abs(d) > 3 * sd:
            found.add(RULE_1_3S)
        if _same_side_run(two, i, 2):
            found.add(RULE_2_2S)
        if i >= 1:
            previous = deviations[i - 1]
            opposite = (d > 0 > previous) or (d < 0 < previous)
            if opposite and abs(d - previous) > 4 * sd:
                found.add(RULE_R_4S)
        if _same_side_run(one, i, 4):
            found.add(RULE_4_1S)
        if _same_side_run(mean_side, i, 10):
            found.add(RULE_10_X)
        flags.append(frozenset(found))
    return flags
