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
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
