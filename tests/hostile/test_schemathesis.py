"""Schemathesis against the gateway's own ``/openapi.json`` (issue 11 part 3, issue 14's "done
when"): every operation, called with generated input as each role (a bearer token from
``/api/v1/auth/login``) and without one, must answer without a 5xx and with a body that
conforms to the schema the document declares for its status.

Bounded in time: a few generated cases per operation and role (``EXAMPLES``), no shrinking — a
failure is reported with the request that caused it, all failures of a run together. Runs after
the access matrix (file order), since generated writes add data to the shared stack."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.hostile.conftest import ROLE_USERS

pytestmark = pytest.mark.integration

# Every 5xx, every body that contradicts its declared schema and every status the document does
# not declare for the operation fails.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Generated cases per operation and role: the whole package stays within a few minutes on
# two cores (10 services in one process).
EXAMPLES = 2
# Server-sent event streams never end: a generated request would wait for its timeout.
STREAMS = ("/api/v1/kpi/stream", "/api/v1/screen-pop")


@pytest.fixture(scope="module")
def schema(stack):
    document = stack.request(None, "GET", "/openapi.json").json()
    return schemathesis.openapi.from_dict(document)


def operations(schema):
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path not in STREAMS:
            yield operation


def fuzz(stack, operation, token: str | None) -> list[str]:
    """Generated calls of one operation; the failures as readable lines."""
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(headers=headers))
    def run(case):
        if failures:
            return
        response = case.call(base_url=stack.base_url, session=stack.http, timeout=60)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - FailureGroup too
            failures.append(f"{operation.method.upper()} {operation.path} -> "
                            f"{response.status_code}: {str(error)[:1500]}\n"
                            f"    request: {case.as_curl_command()[:600]}")

    run()
    return failures


@pytest.mark.parametrize("role", [*ROLE_USERS, "anonymous"])
def test_no_server_errors_and_no_schema_violations(stack, schema, role):
    token = stack.tokens[ROLE_USERS[role]] if role != "anonymous" else None
    failures = [line for operation in operations(schema)
                for line in fuzz(stack, operation, token)]
    assert not failures, f"{len(failures)} operations failed as {role}:\n" + "\n".join(failures)
