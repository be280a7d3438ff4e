"""Browsers: CORS on POST /api/v1/events, and a project's allowed origins (API.md, "Events")."""

import json

import pytest
from django.core.exceptions import ValidationError

from accounts.admin import ProjectAdmin
from events.models import Event
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db
SITE = "https://shop.example.com"
EVENT = {"userId": "visitor-1", "eventName": "page_view"}


def post(client, origin, body=EVENT):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post("/api/v1/events", json.dumps(body), content_type="application/json", **headers)


def test_a_preflight_is_204_for_any_origin_with_what_a_page_may_send(client):
    response = client.options(
        "/api/v1/events",
        HTTP_ORIGIN=SITE,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, x-api-key",
    )
    assert response.status_code == 204 and response.content == b"" and "Content-Type" not in response
    assert response["Access-Control-Allow-Origin"] == SITE
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key", "content-encoding"} <= allowed
    assert int(response["Access-Control-Max-Age"]) > 0 and "Origin" in response["Vary"]


def test_options_without_an_origin_and_other_paths_answer_no_cors(client, project, make_key, client_for):
    assert client.options("/api/v1/events").status_code in (401, 405)
    other = client.options("/api/v1/metrics", HTTP_ORIGIN=SITE, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert other.status_code != 204 and "Access-Control-Allow-Origin" not in other
    read = client_for(make_key(project, scopes=["read"])).get("/api/v1/metrics", HTTP_ORIGIN=SITE)
    assert read.status_code == 200 and "Access-Control-Allow-Origin" not in read


def test_a_cross_origin_post_is_stored_and_readable_by_the_page(project, make_key, client_for, jobs):
    client = client_for(make_key(project, scopes=["ingest"]))
    response = post(client, SITE)
    assert response.status_code == 202, response.content
    assert response["Access-Control-Allow-Origin"] == SITE
    assert "Retry-After" in response["Access-Control-Expose-Headers"]
    jobs()
    assert Event.objects.filter(project=project, user_id="visitor-1").count() == 1


def test_a_project_with_allowed_origins_refuses_the_others_and_stores_nothing(project, make_key, client_for, jobs):
    project.allowed_origins = "https://Shop.example.com/\nhttp://localhost:3000"
    project.save()
    client = client_for(make_key(project, scopes=["ingest"]))
    refused = post(client, "https://evil.example.net", {**EVENT, "userId": "refused"})
    assert_error(refused, 403, "forbidden")
    assert "evil.example.net" in refused.json()["error"]["message"]
    assert refused["Access-Control-Allow-Origin"] == "https://evil.example.net"  # the page may read why
    assert post(client, SITE).status_code == 202
    assert post(client, "http://localhost:3000", {**EVENT, "userId": "local"}).status_code == 202
    assert post(client, None, {**EVENT, "userId": "server"}).status_code == 202  # servers send no Origin
    jobs()
    stored = set(Event.objects.filter(project=project).values_list("user_id", flat=True))
    assert stored == {"visitor-1", "local", "server"}


@pytest.mark.parametrize("bad", ["shop.example.com", "https://shop.example.com/path", "ftp://x.org", "https://a b"])
def test_allowed_origins_must_be_origins(project, bad):
    project.allowed_origins = f"https://ok.example.com\n{bad}"
    with pytest.raises(ValidationError, match="Not an origin"):
        project.full_clean()


def test_the_admin_edits_a_projects_allowed_origins(project, admin_client):
    assert "allowed_origins" in ProjectAdmin.fields
    page = admin_client.get(f"/admin/accounts/project/{project.pk}/change/")
    assert page.status_code == 200 and b'name="allowed_origins"' in page.content


def test_origins_set_in_the_admin_apply_to_the_next_request(project, make_key, client_for, admin_client, jobs):
    client = client_for(make_key(project, scopes=["ingest"]))
    assert post(client, "https://evil.example.net").status_code == 202  # any origin; the key is now cached
    form = {
        "organization": project.organization_id,
        "name": project.name,
        "slug": project.slug,
        "timezone": project.timezone,
        "allowed_origins": SITE,
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    saved = admin_client.post(f"/admin/accounts/project/{project.pk}/change/", form)
    assert saved.status_code == 302, saved.content[:2000]
    assert_error(post(client, "https://evil.example.net"), 403, "forbidden")
    assert post(client, SITE, {**EVENT, "userId": "after"}).status_code == 202
