import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.auth import required_scope
from accounts.models import ApiKey
from analytics_platform.api import ProjectAPIView
from tests.helpers import assert_error

# (method, path, scope it needs). Every project-scoped endpoint belongs here.
ENDPOINTS = [
    ("get", "/api/v1/project", "read"),
    ("get", "/api/v1/keys", "admin"),
    ("post", "/api/v1/keys", "admin"),
    ("get", "/api/v1/keys/{key_id}", "admin"),
    ("delete", "/api/v1/keys/{key_id}", "admin"),
    ("post", "/api/v1/events", "ingest"),
    ("get", "/api/v1/events/summary", "read"),
    ("get", "/api/v1/metrics", "read"),
    ("get", "/api/v1/retention", "read"),
    ("get", "/api/v1/funnels", "read"),
    ("post", "/api/v1/funnels", "admin"),
]
PAYLOADS = {
    "/api/v1/keys": {"name": "n", "scopes": ["read"]},
    "/api/v1/events": {"userId": "u", "eventName": "e"},
    "/api/v1/funnels": {"name": "f", "steps": [{"eventName": "a"}, {"eventName": "b"}]},
}
ALL_SCOPES = ["ingest", "read", "admin"]


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,scope", ENDPOINTS)
@pytest.mark.parametrize("key_scope", ALL_SCOPES)
def test_each_endpoint_requires_its_scope(project, make_key, client_for, method, path, scope, key_scope):
    client = client_for(make_key(project, scopes=[key_scope]))
    target = ApiKey.objects.filter(project=project).first()
    url = path.format(key_id=target.pk)
    payload = PAYLOADS.get(path) if method == "post" else None
    response = getattr(client, method)(url, payload, format="json")
    if key_scope == scope:
        assert response.status_code in (200, 201, 202, 204), response.content
    else:
        error = assert_error(response, 403, "forbidden")
        assert scope in error["message"]
        assert ApiKey.objects.filter(project=project).count() == 1  # nothing was created
        assert ApiKey.objects.get(pk=target.pk).is_active


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,scope", ENDPOINTS)
def test_each_endpoint_requires_a_key(project, client_for, method, path, scope):
    assert_error(getattr(client_for(None), method)(path.format(key_id=1)), 401, "unauthorized")


def _project_views(resolver=None):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _project_views(pattern)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
            if view and issubclass(view, ProjectAPIView):
                yield pattern, view


def test_every_project_view_declares_a_scope_for_each_method():
    views = list(_project_views())
    assert len(views) >= 3
    for pattern, view in views:
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                assert required_scope(view, method.upper()) in ALL_SCOPES, (pattern, method)


@pytest.mark.django_db
def test_another_projects_key_is_404_not_403(project, other_project, make_key, client_for):
    make_key(project, name="theirs")
    theirs = ApiKey.objects.get(project=project, name="theirs")
    mine = client_for(make_key(other_project, scopes=["read", "admin"]))
    assert_error(mine.get(f"/api/v1/keys/{theirs.pk}"), 404, "not_found")
    assert_error(mine.delete(f"/api/v1/keys/{theirs.pk}"), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.is_active
    listed = mine.get("/api/v1/keys").json()
    assert [k["name"] for k in listed["results"]] == ["test"]
    assert mine.get("/api/v1/project").json()["id"] == other_project.id


@pytest.mark.django_db
@pytest.mark.parametrize("bad_id", ["abc", "1.5", "-1", "99999999999999999999999"])
def test_malformed_or_unknown_id_is_404(api, bad_id):
    assert_error(api.get(f"/api/v1/keys/{bad_id}"), 404, "not_found")
