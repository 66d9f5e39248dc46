"""Run every benchmark and print one table: ``python -m benchmarks [NAME…]``."""

from __future__ import annotations

import sys

from benchmarks import audit, envs, slack, spine
from benchmarks.table import print_table

SUITES = {"spine": spine.run, "slack": slack.run, "audit": audit.run, "envs": envs.run}


def main(argv: list[str]) -> int:
    chosen = argv or list(SUITES)
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
        return 2
    rows = []
    for name in chosen:
        rows.extend(SUITES[name]())
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
