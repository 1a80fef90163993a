"""Issue 12's targets as table rows: every measure `make bench` checks against a goal, with its ratio and ok/MISS.

Each part of the benchmark (throughput against the floor, moto, workers, the runner at scale) returns rows of
this one shape, and report.py prints them in one table after the latency table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetRow:
    """One measured figure against its target."""

    backend: str
    """`sqlite`, `postgres`, or `-` where the database does not matter."""
    measure: str
    """What was measured, e.g. `runner tick p50/p99 ms · 10k active`."""
    value: str
    """The measured figure(s), formatted."""
    ratio: str
    """The ratio the target is about, e.g. `27.1% of floor 24,470` or `1.2× vs 100 active`."""
    target: str
    """The goal, e.g. `≥25%`."""
    ok: bool

    def cells(self) -> list[str]:
        """The row's markdown cells, the verdict last."""
        verdict = f"{self.target} {'ok' if self.ok else 'MISS'}"
        return [self.backend, self.measure, self.value, self.ratio, verdict]
