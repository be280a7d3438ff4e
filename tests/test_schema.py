import re
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client


def test_schema_generates_and_validates_without_warnings():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/keys" in schema["paths"] and "/health" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"


@pytest.mark.django_db
def test_schema_endpoint_and_docs_page_are_served_without_a_cdn():
    client = Client()
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api-docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    # no URL to another host (a bare "cdn" can occur in the page's random CSRF token)
    assert "https://" not in html and "http://" not in html and not re.search(r"(?<![a-z0-9])//[a-z0-9.-]", html)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset


def _schema() -> dict:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def test_event_ingestion_documents_its_body_one_event_an_array_or_a_sent_at_batch():
    schema = _schema()
    body = schema["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]
    assert list(body) == ["application/json", "text/plain"]  # text/plain: what sendBeacon sends
    assert body["text/plain"]["schema"] == body["application/json"]["schema"]
    parameters = schema["paths"]["/api/v1/events"]["post"]["parameters"]
    assert [(p["name"], p["in"]) for p in parameters] == [("apiKey", "query")]
    components = schema["components"]["schemas"]
    payload = components[body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    event_ref = {"$ref": "#/components/schemas/EventInRequest"}
    batch = {"type": "array", "items": event_ref, "minItems": 1, "maxItems": 1000}
    event_form, array_form, sent_form = payload["oneOf"]
    assert (event_form, array_form) == (event_ref, batch)
    assert sent_form["required"] == ["batch"] and sent_form["properties"]["batch"] == batch
    assert [variant["type"] for variant in sent_form["properties"]["sentAt"]["oneOf"]] == ["string", "integer"]
    event = components["EventInRequest"]
    assert set(event["required"]) == {"userId", "eventName"}
    fields = event["properties"]
    assert (fields["userId"]["minLength"], fields["userId"]["maxLength"]) == (1, 255)
    assert (fields["eventName"]["minLength"], fields["eventName"]["maxLength"]) == (1, 200)
    assert fields["eventId"]["maxLength"] == 128
    assert [variant["type"] for variant in fields["timestamp"]["oneOf"]] == ["string", "integer"]
    assert fields["properties"]["type"] == "object"


def test_funnel_ids_in_paths_are_integers_and_windows_are_bounded():
    schema = _schema()
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/funnels/{id}"):
            for operation in operations.values():
                (param,) = [p for p in operation["parameters"] if p["in"] == "path"]
                assert param["schema"] == {"type": "integer"}, (path, param)
    funnel = schema["components"]["schemas"]["FunnelRequest"]["properties"]
    assert funnel["conversionWindow"]["maximum"] == 2147483647
    steps = funnel["steps"]
    assert (steps["type"], steps["minItems"], steps["maxItems"]) == ("array", 2, 20)
    assert steps["items"]["required"] == ["eventName"]
    assert steps["items"]["properties"]["timeWindow"]["maximum"] == 2147483647
    assert schema["components"]["schemas"]["ApiKeyCreateRequest"]["properties"]["rateLimit"]["maximum"] == 2147483647


def test_an_ingestion_400_is_documented_as_the_error_shape_with_the_ingest_body_optional():
    schema = _schema()
    response = schema["paths"]["/api/v1/events"]["post"]["responses"]["400"]["content"]["application/json"]
    body = schema["components"]["schemas"][response["schema"]["$ref"].rsplit("/", 1)[1]]
    assert body["required"] == ["error"]
    assert {"accepted", "duplicates", "rejected", "error"} == set(body["properties"])
