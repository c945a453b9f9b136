"""Report objects of the proof commands, and how they render (rich table, JSON).

    report = djobs.bench.run(...)
    report.rows[0].ratio          # djobs / raw, from the two numbers measured in this run
    print(report.to_json())
    rich.print(bench_table(report)); print(report.reading)
"""

from __future__ import annotations

import json
import platform
import sqlite3
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from djobs.proof.invariants import Snapshot, Verdict


@dataclass(frozen=True)
class BenchRow:
    """One measured figure beside its raw-SQL baseline from the same run.

    `ratio` is djobs / raw. For throughput (higher is better) 0.8 means djobs reached 80 % of raw; for
    latency and round-trip times (lower is better) 1.3 means djobs took 1.3 times as long.
    """

    backend: str
    metric: str
    unit: str
    djobs: float | None
    raw: float | None
    higher_is_better: bool = True
    note: str = ""
    samples: int = 0

    @property
    def ratio(self) -> float | None:
        if self.djobs is None or not self.raw:
            return None
        return self.djobs / self.raw

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "metric": self.metric,
            "unit": self.unit,
            "djobs": self.djobs,
            "raw": self.raw,
            "ratio": self.ratio,
            "higher_is_better": self.higher_is_better,
            "samples": self.samples,
            "note": self.note,
        }


def environment() -> dict[str, Any]:
    import os

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": round(os.getloadavg()[0], 2),  # a busy machine explains noisy figures
    }


@dataclass
class BenchReport:
    rows: list[BenchRow]
    params: dict[str, Any]
    env: dict[str, Any] = field(default_factory=environment)
    errors: list[str] = field(default_factory=list)

    def row(self, backend: str, metric: str) -> BenchRow | None:
        return next((r for r in self.rows if r.backend == backend and r.metric == metric), None)

    @property
    def reading(self) -> str:
        return reading(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "params": self.params,
            "env": self.env,
            "errors": self.errors,
            "reading": self.reading,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    return f"{value:,.0f}"


def bench_table(report: BenchReport) -> Table:
    table = Table(title="djobs bench: each figure beside raw SQL doing the same work in the same run")
    for name, justify in (("backend", "left"), ("measure", "left"), ("unit", "left"), ("djobs", "right"),
                          ("raw SQL", "right"), ("djobs/raw", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in report.rows:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        table.add_row(r.backend, r.metric, r.unit, _fmt(r.djobs, r.unit), _fmt(r.raw, r.unit), ratio)
    return table


def bench_notes(report: BenchReport) -> list[str]:
    """What each measure and its raw baseline are, once per distinct note (printed under the table)."""
    notes: dict[str, dict[str, str]] = {}  # measure -> note -> backends
    for r in report.rows:
        key = next((k for k in ("dispatch latency", "end-to-end") if r.metric.startswith(k)), r.metric)
        if r.metric.endswith("vs raw batched"):
            key = "end-to-end vs raw batched"
        if r.note:
            backends = notes.setdefault(key, {}).setdefault(r.note, "")
            if r.backend not in backends.split(", "):
                notes[key][r.note] = f"{backends}, {r.backend}" if backends else r.backend
    out = []
    for key, by_note in notes.items():
        for note, backends in by_note.items():
            out.append(f"{key}{f' ({backends})' if len(by_note) > 1 else ''}: {note}")
    return out


def print_bench(report: BenchReport, console: Any, errors: Any | None = None) -> None:
    """The human form of a bench report (`djobs bench`, benchmarks/run.py): table, notes, reading, errors."""
    console.print(bench_table(report))
    for note in bench_notes(report):
        console.print(f"  {note}", style="dim")
    console.print(report.reading)
    start, end = report.env.get("load_average_at_start"), report.env.get("load_average_at_end")
    if start is not None and end is not None:
        console.print(f"load average {start} → {end} on {report.env.get('cpus', '?')} CPUs", style="dim")
    for e in report.errors:
        (errors or console).print(f"[red]error:[/] {e}")


def reading(report: BenchReport) -> str:
    """One line a user can act on: which backend suits this machine, from this run's numbers."""
    def get(backend: str, metric: str) -> float | None:
        row = report.row(backend, metric)
        return row.djobs if row else None

    parts = []
    sq, pg = get("sqlite", "end-to-end, 1 process"), get("postgres", "end-to-end, 1 process")
    sq2, pg2 = get("sqlite", "end-to-end, 2 processes"), get("postgres", "end-to-end, 2 processes")
    sql, pgl = get("sqlite", "dispatch latency p50"), get("postgres", "dispatch latency p50")
    if sq and pg:
        faster = "SQLite" if sq >= pg else "PostgreSQL"
        parts.append(f"one worker: SQLite {sq:,.0f} vs PostgreSQL {pg:,.0f} jobs/s ({faster} faster here)")
    elif sq or pg:
        name, val = ("SQLite", sq) if sq else ("PostgreSQL", pg)
        parts.append(f"{name} runs {val:,.0f} no-op jobs/s with one worker process")
    if sq and sq2:
        gain = sq2 / sq
        parts.append(
            "a second SQLite worker process adds little (one writer)" if gain < 1.3
            else f"SQLite scales {gain:.1f}× with 2 processes"
        )
    if pg and pg2:
        parts.append(f"PostgreSQL scales {pg2 / pg:.1f}× with 2 processes")
    if sql and pgl:
        parts.append(f"idle pickup p50 {sql:.1f} ms on SQLite, {pgl:.1f} ms on PostgreSQL")
    if not parts:
        return "no figures measured"
    advice = ""
    if sq and pg:
        advice = (
            " — choose SQLite for one machine; PostgreSQL when workers run on several machines"
            " or need to scale out."
        )
    return "; ".join(parts) + advice


@dataclass
class SelftestReport:
    verdicts: list[Verdict]
    stats: dict[str, Any]
    snapshot: Snapshot | None = None  # what the checks read; kept for tests and re-checks, not in JSON
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts) and not self.errors

    def verdict(self, name_part: str) -> Verdict:
        return next(v for v in self.verdicts if name_part in v.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "invariants": [v.to_dict() for v in self.verdicts],
            "stats": self.stats,
            "errors": self.errors,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)


def selftest_table(report: SelftestReport) -> Table:
    table = Table(title="djobs selftest")
    table.add_column("invariant")
    table.add_column("verdict")
    table.add_column("checked", justify="right")
    table.add_column("detail")
    for v in report.verdicts:
        detail = v.detail + "".join(f"\n  {x}" for x in v.violations)
        table.add_row(v.name, "[green]holds[/]" if v.ok else "[bold red]VIOLATED[/]", str(v.checked), detail)
    return table
