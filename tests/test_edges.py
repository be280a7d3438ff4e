"""Issue 10, "nothing a client sends may produce a 500": every method an API view does not
have is a 405 in the one error shape, decided by the permission (accounts.auth.HasScope)."""

from datetime import UTC, datetime

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import ApiKey
from analytics_platform.api import ProjectAPIView
from funnels.models import Funnel
from tests.helpers import assert_error, store_events

SAMPLE_ARGS = {"pk": "{pk}", "user_id": "u1"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"]


def _api_views(resolver=None, prefix=""):
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern, route)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "view_class", None)
            if view and issubclass(view, ProjectAPIView):
                yield route, view


def _sample_path(route: str) -> str:
    for name, value in SAMPLE_ARGS.items():
        for converter in ("id", "path", "str", "int"):
            route = route.replace(f"<{converter}:{name}>", value)
    assert "<" not in route, route
    return "/" + route


API_VIEWS = sorted({(_sample_path(route), view) for route, view in _api_views()}, key=lambda pair: pair[0])
SUPPORTED = {
    "/api/v1/project": {"GET", "HEAD"},
    "/api/v1/keys": {"GET", "HEAD", "POST"},
    "/api/v1/keys/{pk}": {"GET", "HEAD", "DELETE"},
    "/api/v1/events": {"POST"},
    "/api/v1/events/summary": {"GET", "HEAD"},
    "/api/v1/metrics": {"GET", "HEAD"},
    "/api/v1/users/u1/journey": {"GET", "HEAD"},
    "/api/v1/retention": {"GET", "HEAD"},
    "/api/v1/funnels": {"GET", "HEAD", "POST"},
    "/api/v1/funnels/{pk}": {"GET", "HEAD", "PUT", "PATCH", "DELETE"},
    "/api/v1/funnels/{pk}/analytics": {"GET", "HEAD"},
    "/api/v1/funnels/{pk}/analytics/users": {"GET", "HEAD"},
}
UNSUPPORTED = [(path, method) for path, _ in API_VIEWS for method in METHODS if method not in SUPPORTED.get(path, ())]


def test_the_method_table_covers_every_api_view():
    assert {path for path, _ in API_VIEWS} == set(SUPPORTED)


@pytest.fixture
def funnel(project):
    return Funnel.objects.create(project=project, name="f", steps=[{"eventName": "a"}, {"eventName": "b"}])


@pytest.mark.django_db
@pytest.mark.parametrize("path,method", UNSUPPORTED)
def test_every_unsupported_method_is_405_in_the_error_shape(api, funnel, path, method):
    response = api.generic(method, path.format(pk=funnel.pk))
    if method == "HEAD":  # no body
        assert response.status_code == 405 and response.content == b""
    else:
        assert_error(response, 405, "method_not_allowed")
    assert set(response["Allow"].split(", ")) == SUPPORTED[path]
    assert Funnel.objects.count() == 1 and ApiKey.objects.count() == 1  # nothing changed


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "FOO"])
@pytest.mark.parametrize("path", ["/api/v1/funnels", "/api/v1/funnels/{pk}", "/api/v1/events"])
def test_unsupported_methods_without_a_key_are_405_too(client_for, funnel, path, method):
    assert_error(client_for(None).generic(method, path.format(pk=funnel.pk)), 405, "method_not_allowed")


@pytest.mark.django_db
@pytest.mark.parametrize("path", [path for path, methods in SUPPORTED.items() if "GET" in methods])
def test_head_answers_like_get_without_a_body(api, project, funnel, path):
    store_events(project, [("u1", "a", datetime.now(UTC))])
    pk = ApiKey.objects.get().pk if path.startswith("/api/v1/keys") else funnel.pk
    url = path.format(pk=pk) + ("?step=1" if path.endswith("/users") else "")
    get, head = api.get(url), api.head(url)
    assert get.status_code == 200, get.content
    assert head.status_code == 200 and head.content == b""
