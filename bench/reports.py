"""Every report over five years of history for 100 managers: p50/p95 per report against the
naive SQL over the raw fact tables, measured in the same run.

    python bench/reports.py                   # generate (bench/datagen_history.py), measure, drop
    python bench/reports.py --scale 0.1       # a tenth of the history
    python bench/reports.py --url URL --keep  # measure an existing generated database

Each report runs as the service runs it (parameters parsed and scoped by role, ``ReportQueries``,
the figures made JSON) for typical callers — one manager, one department's head, the director —
over a month (grouped by day), a year (by week) and five years (by month). The baseline is the
same report computed from the facts (``naive=True``: what a report would cost without the
rollups), run for the director, the largest of the three. Target (DESIGN.md §5): p95 < 300 ms.
Results: ``bench/results/reports.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "bench")]

from datagen_history import NOW, generate  # noqa: E402

from services.reports.domain.catalogue import REPORTS, parse_params, scope  # noqa: E402
from services.reports.queries import ReportQueries  # noqa: E402
from services.reports.service import jsonable  # noqa: E402

TODAY = date(2026, 11, 30)
PERIODS = {
    "month": ({"period": "month", "date": "2026-10-15"}, "day"),
    "year": ({"period": "custom", "date_from": "2025-12-01", "date_to": "2026-11-30"}, "week"),
    "five_years": ({"period": "custom", "date_from": "2021-12-01", "date_to": "2026-11-30"},
                   "month"),
}
TARGET_MS = 300.0


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))], 2)


def callers(session) -> dict:
    manager, department = session.execute(sa.text(
        "SELECT user_id, department_id FROM staff ORDER BY full_name LIMIT 1")).one()
    return {"manager": ("manager", str(manager), str(department)),
            "department": ("sales_head", "00000000-0000-4000-8000-000000000001", str(department)),
            "all": ("director", "00000000-0000-4000-8000-000000000002", None)}


def params_for(name: str, period: str) -> dict:
    report = REPORTS[name]
    raw, bucket = PERIODS[period]
    raw = dict(raw)
    if report.kind in ("stuck", "idle"):
        return {"days": 30} if report.kind == "idle" else {}
    if report.kind == "forecast":
        return {**raw, "group_by": "month"} if period != "month" else {
            "period": "month", "date": "2026-12-15"}
    if report.kind in ("funnel", "stage_time"):
        return {**raw, "group_by": "stage"}
    if name == "new_leads":
        return {**raw, "group_by": "source"}
    if name == "activity":
        return {**raw, "group_by": f"manager,{bucket}"}
    return {**raw, "group_by": bucket}


def timed(session, params, naive: bool) -> float:
    started = time.perf_counter()
    result = ReportQueries(session, NOW).run(params, naive=naive)
    json.dumps(jsonable(result))
    return (time.perf_counter() - started) * 1000


def measure(url: str, runs: int, naive_runs: int) -> dict:
    engine = sa.create_engine(url)
    cases = []
    with Session(engine) as session:
        who = callers(session)
        for name, report in REPORTS.items():
            periods = ["now"] if report.kind in ("stuck", "idle") else list(PERIODS)
            for period in periods:
                raw = params_for(name, period if period != "now" else "month")
                for scope_name, (role, user, dept) in who.items():
                    params = scope(parse_params(name, raw, TODAY), role, user, dept)
                    timed(session, params, False)   # warm the cache once
                    samples = [timed(session, params, False) for _ in range(runs)]
                    case = {"report": name, "period": period, "scope": scope_name,
                            "params": raw, "p50_ms": pct(samples, 0.5),
                            "p95_ms": pct(samples, 0.95), "samples": len(samples)}
                    if scope_name == "all" and report.kind in ("additive", "funnel"):
                        naive = [timed(session, params, True) for _ in range(naive_runs)]
                        case.update({"naive_p50_ms": pct(naive, 0.5),
                                     "naive_p95_ms": pct(naive, 0.95),
                                     "naive_samples": len(naive)})
                        fast = ReportQueries(session, NOW).run(params)
                        case["naive_same_figures"] = fast == ReportQueries(
                            session, NOW).run(params, naive=True)
                    cases.append(case)
                    print(f"{name:13} {period:10} {scope_name:10} p50 {case['p50_ms']:8.1f} "
                          f"p95 {case['p95_ms']:8.1f} ms"
                          + (f"   naive p50 {case['naive_p50_ms']:9.1f} ms"
                             if "naive_p50_ms" in case else ""), flush=True)
    engine.dispose()
    return {"cases": cases}


def summarise(cases: list[dict]) -> list[dict]:
    figures = []
    for name in REPORTS:
        mine = [c for c in cases if c["report"] == name]
        worst = max(mine, key=lambda c: c["p95_ms"])
        figure = {"figure": f"{name} p95 (worst case: {worst['scope']}, {worst['period']})",
                  "value": worst["p95_ms"], "unit": "ms", "p50_ms_of_worst": worst["p50_ms"],
                  "target": TARGET_MS, "ratio_to_target": round(worst["p95_ms"] / TARGET_MS, 3)}
        naive = [c for c in mine if "naive_p50_ms" in c]
        if naive:
            slowest = max(naive, key=lambda c: c["naive_p50_ms"])
            figure.update({
                "baseline": f"the same report from the raw facts ({slowest['period']}, all)",
                "baseline_value": slowest["naive_p50_ms"],
                "value_same_case": slowest["p50_ms"],
                "ratio": round(slowest["naive_p50_ms"] / max(slowest["p50_ms"], 0.01), 1),
                "same_figures": all(c["naive_same_figures"] for c in naive)})
        figures.append(figure)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--url", help="an already generated database (skips generation)")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--generation-json", help="with --url: the results file of the run that "
                                                  "generated it (its generation figures are kept)")
    args = parser.parse_args()
    from crm_platform.testing import TestDatabases

    databases = TestDatabases()
    generation = None
    try:
        url = args.url
        if url is not None and args.generation_json:
            generation = json.loads(Path(args.generation_json).read_text())["generation"]
        if url is None:
            url = databases.url_for("reports")
            print(f"generating five years at scale {args.scale} into {url}", flush=True)
            generation = generate(url, args.scale)
            print(json.dumps(generation, ensure_ascii=False), flush=True)
        measured = measure(url, args.runs, args.naive_runs)
    finally:
        if not args.keep:
            databases.drop_all()
    report = {
        "name": "reports", "scale": generation["scale"] if generation else "existing database",
        "target": "any report over 5 years: p95 < 300 ms (DESIGN.md §5)",
        "measured": "ReportQueries.run + JSON, in process, sequential, warm cache; callers: "
                    "one manager, one department head, the director",
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": summarise(measured["cases"]), "generation": generation,
        "cases": measured["cases"]}
    out = ROOT / "bench" / "results" / "reports.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for fig in report["figures"]:
        base = (f"   naive {fig['baseline_value']:9.1f} ms vs {fig['value_same_case']:.1f} ms "
                f"(x{fig['ratio']})" if "ratio" in fig else "")
        print(f"{fig['figure']:55s} {fig['value']:8.1f} ms{base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
