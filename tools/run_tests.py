"""The whole test suite: lint, then every suite in its own pytest process (nameko's remote-error
registry is process-global, so the gateway's mappings must not leak into services' tests).

    python -m tools.run_tests              # everything (what `./crm test` and CI run)
    python -m tools.run_tests gateway      # suites whose path contains "gateway"
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".test-results"


def suites() -> list[Path]:
    found = [ROOT / "libs" / "crm_platform" / "tests"]
    found += sorted(p / "tests" for p in (ROOT / "services").iterdir() if (p / "tests").is_dir())
    # tests/hostile (schemathesis, the access matrix) runs the whole stack in its own process.
    found += [ROOT / "gateway" / "tests", ROOT / "tests", ROOT / "tests" / "hostile"]
    return [s for s in found if any(s.rglob("test_*.py"))]


def counts(junit: Path) -> dict:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not junit.exists():
        return totals
    root = ET.parse(junit).getroot()
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    return totals


def main(argv: list[str]) -> int:
    selected = [s for s in suites() if not argv or any(a in str(s) for a in argv)]
    RESULTS.mkdir(exist_ok=True)
    amqp = os.environ.get("CRM_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
    api = os.environ.get("CRM_RABBIT_API_URI", "http://guest:guest@127.0.0.1:15672")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}

    print("== ruff", flush=True)
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], cwd=ROOT)
    failed_suites = [] if lint.returncode == 0 else ["ruff"]

    passed = failed = skipped = 0
    for suite in selected:
        name = str(suite.relative_to(ROOT)).replace("/", "_")
        junit = RESULTS / f"{name}.xml"
        junit.unlink(missing_ok=True)
        print(f"\n== {suite.relative_to(ROOT)}", flush=True)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:warnings",
             f"--junitxml={junit}", f"--amqp-uri={amqp}", f"--rabbit-api-uri={api}",
             *(["--ignore", str(ROOT / "tests" / "hostile")] if suite == ROOT / "tests" else [])],
            cwd=ROOT, env=env,
        )
        c = counts(junit)
        suite_failed = c["failures"] + c["errors"]
        passed += c["tests"] - suite_failed - c["skipped"]
        failed += suite_failed
        skipped += c["skipped"]
        if result.returncode not in (0, 5) or suite_failed:
            failed_suites.append(str(suite.relative_to(ROOT)))
            if not suite_failed:  # pytest itself failed (collection, crash): count it
                failed += 1
        print(f"   ({time.monotonic() - started:.0f}s)", flush=True)

    print()
    if failed_suites:
        print("failed: " + ", ".join(failed_suites))
    if passed + failed == 0:
        print("no test ran")
        return 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed_suites else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
