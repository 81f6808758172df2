"""Property-based run of schemathesis against the OpenAPI contract of a live server: no 5xx,
no undocumented status codes, bodies match their schemas."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.service.conftest import Server, digits_npz, wait_for


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    srv = Server(root / "data").start()
    path, _ = digits_npz(root / "d.npz", n=60)
    with httpx.Client(base_url=srv.url, timeout=60) as c:  # one real dataset and finished job to hit
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes()).json()
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": {"n_members": 2, "n_epochs": 1},
                                    "adaboost": {"n_rounds": 3}}).json()
        wait_for(c, job["job_id"], ("succeeded", "failed"), timeout=120)  # polls with a deadline, not a spin
    yield srv
    srv.stop()


# No 5xx, no undocumented status code, bodies and content types as documented. (Left out:
# positive_data_acceptance — a schema-valid random file is still not a dataset, so 4xx is right.)
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.response_schema_conformance,
          checks.content_type_conformance]


@pytest.mark.slow
def test_api_conforms_to_its_openapi_contract(live: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures = []
    n_operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        n_operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert n_operations >= 12
    assert not failures, "\n\n".join(failures)
