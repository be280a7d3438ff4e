import io
import json
import logging

import pytest
import structlog
from django.test import Client


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def log_output():
    """What the configured JSON formatter writes, from a handler added beside the console one."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.mark.django_db
def test_every_line_of_a_request_carries_its_request_id_and_never_the_key(project, make_key, log_output):
    plaintext = make_key(project, scopes=["read"])
    client = Client()
    client.get("/api/v1/project", headers={"X-API-Key": plaintext, "X-Request-ID": "req-1"})
    client.get("/api/v1/nope", headers={"Authorization": f"Bearer {plaintext}", "X-Request-ID": "req-2"})
    client.get(f"/api/v1/project?apiKey={plaintext}", headers={"X-API-Key": plaintext + "x", "X-Request-ID": "req-3"})
    structlog.get_logger("test").info("outside", api_key=plaintext)
    output = log_output.getvalue()

    assert plaintext not in output and plaintext[12:] not in output
    lines = _json_lines(output)
    by_request = {}
    for line in lines:
        by_request.setdefault(line.get("request_id"), []).append(line)
    access = {line["request_id"]: line for line in lines if line["event"] == "request"}
    assert access["req-1"]["status"] == 200 and access["req-1"]["project_id"] == project.id
    assert access["req-2"]["status"] == 404 and access["req-3"]["status"] == 401
    assert access["req-1"]["path"] == "/api/v1/project"
    # Django's own warning lines for the 404 and 401 carry the request id too.
    assert any(line["logger"] == "django.request" for line in by_request["req-2"])
    assert any(line["logger"] == "django.request" for line in by_request["req-3"])
    outside = [line for line in lines if line["event"] == "outside"]
    assert outside[0]["api_key"] == "[redacted]"


@pytest.mark.django_db
def test_a_request_id_is_made_when_none_or_a_bad_one_is_sent():
    first = Client().get("/health")["X-Request-ID"]
    second = Client().get("/health", headers={"X-Request-ID": "bad id\nwith newline"})["X-Request-ID"]
    assert len(first) == 32 and len(second) == 32 and first != second
