"""Schemathesis against each running service's /openapi.json: no 5xx, and every answer as the
document says (status, content type, headers, body schema), on every operation.

Bounded so that CI stays quick: `MAX_EXAMPLES` per operation in the fuzzing phase, plus the
coverage phase's boundary and negative cases; one worker; a fixed seed (override with
SCHEMATHESIS_SEED to explore). The JSON report of each run is kept next to the stack's logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.harness.stack import Stack

MAX_EXAMPLES = 50
SEED = os.environ.get("SCHEMATHESIS_SEED", "1")
# Every check but `positive_data_acceptance`, which expects any schema-valid request to be
# accepted; ours refuse some by design, each documented: a reused Idempotency-Key (422), a
# cursor we did not issue (400), an integral float such as 3.0 for an integer (strict types).
EXCLUDED_CHECKS = "positive_data_acceptance"


@pytest.mark.parametrize("service", ["orders", "inventory", "notifications"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(stack: Stack, service: str):
    report = stack.logs / f"schemathesis-{service}.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{stack.url(service)}/openapi.json",
        "--checks=all",
        f"--exclude-checks={EXCLUDED_CHECKS}",
        "--header=Authorization: Bearer dev-admin",
        f"--max-examples={MAX_EXAMPLES}",
        "--phases=examples,coverage,fuzzing",
        "--mode=all",
        f"--seed={SEED}",
        "--workers=1",
        "--request-timeout=10",
        "--no-color",
        "--report=json",
        f"--report-json-path={report}",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240)
    (stack.logs / f"schemathesis-{service}.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]

    result = json.loads(report.read_text())
    operations, cases = result["operations"]["tested"], result["test_cases"]["generated"]
    print(
        f"schemathesis {service}: {operations} operations, {cases} test cases "
        f"(max {MAX_EXAMPLES} fuzzed per operation + coverage cases), seed {SEED}, "
        f"{result['running_time']:.1f}s"
    )
    assert operations == result["operations"]["total"] and result["failures"] == []
