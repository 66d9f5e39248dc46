"""One row per measurement, with its target, printed as a table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    target: str
    ok: bool


def summary(samples: list[float], unit: str = "ms", scale: float = 1000) -> str:
    """median / p95 / max of ``samples`` (seconds) in ``unit``."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * scale:.0f} {unit}, "
        f"p95 {p95 * scale:.0f} {unit}, max {ordered[-1] * scale:.0f} {unit} (n={len(ordered)})"
    )


def print_table(rows: list[Row]) -> None:
    width = max(len(r.name) for r in rows)
    value_width = max(len(r.value) for r in rows)
    target_width = max(len(r.target) for r in rows)
    print(f"{'benchmark':{width}}  {'measured':{value_width}}  {'target':{target_width}}  met")
    for r in rows:
        mark = "yes" if r.ok else "NO"
        print(f"{r.name:{width}}  {r.value:{value_width}}  {r.target:{target_width}}  {mark}")
