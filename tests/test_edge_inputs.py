"""Issue 10: every integer and string a client sends is checked against what the database and
the SQL can hold (400 naming the field, never a database error), and a missing funnel is one
404 whatever its id looks like."""

from datetime import UTC, datetime

import pytest

from accounts.models import ApiKey
from funnels.models import Funnel
from tests.helpers import assert_error, store_events


@pytest.fixture
def funnel(project):
    return Funnel.objects.create(project=project, name="f", steps=[{"eventName": "a"}, {"eventName": "b"}])


# Integers: every one a client sends is range-checked before it reaches the database.

KEY = {"name": "k", "scopes": ["read"]}
TWO_STEPS = [{"eventName": "a"}, {"eventName": "b"}]


def _fields(details: dict) -> set[str]:
    """The fields a 400 names: top-level ones, and the `steps[i]...` paths under `steps`."""
    steps = details.get("steps")
    return set(details) | (set(steps) if isinstance(steps, dict) else set())


@pytest.mark.django_db
@pytest.mark.parametrize("value", [2147483648, 10**30, 0, -1])
def test_a_key_rate_limit_past_the_column_is_400(api, value):
    error = assert_error(api.post("/api/v1/keys", {**KEY, "rateLimit": value}, format="json"), 400, "invalid_input")
    assert "rateLimit" in error["details"]
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_the_largest_rate_limit_is_stored(api):
    response = api.post("/api/v1/keys", {**KEY, "rateLimit": 2147483647}, format="json")
    assert response.status_code == 201 and response.json()["rateLimit"] == 2147483647


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change,where",
    [
        ({"conversionWindow": 2147483648}, "conversionWindow"),
        ({"conversionWindow": 10**30}, "conversionWindow"),
        ({"steps": [{"eventName": "a"}, {"eventName": "b", "timeWindow": 2147483648}]}, "steps[1].timeWindow"),
        ({"steps": [{"eventName": "a", "filters": {"x": 2**63}}, {"eventName": "b"}]}, "steps[0].filters.x"),
        (
            {"steps": [{"eventName": "a"}, {"eventName": "b", "filters": {"x": {"op": "gt", "value": -(2**63)}}}]},
            "steps[1].filters.x",
        ),
        (
            {
                "steps": [
                    {"eventName": "a", "filters": {"x": {"op": "in", "value": [1, [{"y": 10**20}]]}}},
                    TWO_STEPS[1],
                ]
            },
            "steps[0].filters.x",
        ),
        (
            {"steps": [{"eventName": "a", "filters": {"x": {"op": "in", "value": list(range(101))}}}, TWO_STEPS[1]]},
            "steps[0].filters.x",
        ),
        ({"steps": [{"eventName": "a", "filters": {f"p{i}": 1 for i in range(11)}}, TWO_STEPS[1]]}, "steps[0].filters"),
        ({"steps": [{"eventName": "a", "filters": {"": 1}}, TWO_STEPS[1]]}, "steps[0].filters"),
        ({"steps": [{"eventName": "a", "filters": {"x": {"op": ["eq"]}}}, TWO_STEPS[1]]}, "steps[0].filters.x"),
    ],
)
def test_funnel_numbers_and_sizes_past_what_the_database_holds_are_400(api, change, where):
    body = {"name": "f", "steps": TWO_STEPS, **change}
    error = assert_error(api.post("/api/v1/funnels", body, format="json"), 400, "invalid_input")
    assert where in _fields(error["details"]), error["details"]
    assert Funnel.objects.count() == 0


@pytest.mark.django_db
def test_the_largest_windows_are_stored_and_analysed(api):
    steps = [{"eventName": "a", "filters": {"n": 2**63 - 1}}, {"eventName": "b", "timeWindow": 2147483647}]
    created = api.post("/api/v1/funnels", {"name": "f", "steps": steps, "conversionWindow": 2147483647}, format="json")
    assert created.status_code == 201, created.content
    analytics = api.get(f"/api/v1/funnels/{created.json()['id']}/analytics?startDate=2999-12-01&endDate=2999-12-31")
    assert analytics.status_code == 200, analytics.content


B = b'{"eventName": "b"}'


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,where",
    [
        (b'{"steps": [{"eventName": "a\\u0000"}, %s]}' % B, "steps[0].eventName"),
        (b'{"steps": [%s, {"eventName": "b\\ud800"}]}' % B, "steps[1].eventName"),
        (b'{"steps": [{"eventName": "a", "filters": {"k\\u0000": 1}}, %s]}' % B, "steps[0].filters"),
        (b'{"steps": [{"eventName": "a", "filters": {"k\\udfff": 1}}, %s]}' % B, "steps[0].filters"),
        (b'{"steps": [{"eventName": "a", "filters": {"k": "\\ud800"}}, %s]}' % B, "steps[0].filters.k"),
        (b'{"steps": [{"eventName": "a", "filters": {"k": ["\\u0000"]}}, %s]}' % B, "steps[0].filters.k"),
        (b'{"steps": [{"eventName": "a", "\\ud800": 1}, %s]}' % B, "steps[0]"),
        (b'{"steps": [%s, %s], "order": "\\ud800"}' % (B, B), "order"),
        (b'{"steps": [%s, %s], "name": "f\\ud800"}' % (B, B), "name"),
    ],
)
def test_text_no_database_can_store_is_400_not_500(api, body, where):
    body = b'{"name": "f", ' + body[1:]  # the last "name" wins
    response = api.generic("POST", "/api/v1/funnels", body, content_type="application/json")
    error = assert_error(response, 400, "invalid_input")
    assert where in _fields(error["details"]), error["details"]
    assert Funnel.objects.count() == 0


@pytest.mark.django_db
def test_an_error_echoing_a_lone_surrogate_is_rendered_escaped(api):
    body = b'{"name": "k", "scopes": ["\\ud800"]}'
    response = api.generic("POST", "/api/v1/keys", body, content_type="application/json")
    error = assert_error(response, 400, "invalid_input")
    assert "\\ud800" in str(error["details"]["scopes"])
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/funnels/99999999999999999999999",
        "/api/v1/funnels/9223372036854775808",
        "/api/v1/funnels/9223372036854775807",
        "/api/v1/funnels/99999999999999999999999/analytics",
        "/api/v1/funnels/99999999999999999999999/analytics/users?step=1",
        "/api/v1/funnels/0",
        "/api/v1/funnels/-1",
        "/api/v1/funnels/1e3",
        "/api/v1/funnels/%20{pk}",
        "/api/v1/funnels/{pk}.0",
        "/api/v1/funnels/abc/analytics",
    ],
)
def test_every_missing_funnel_is_the_same_404(api, funnel, path):
    error = assert_error(api.get(path.format(pk=funnel.pk)), 404, "not_found")
    assert error["message"] == "Funnel not found."


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_projects_funnel_is_the_same_404(other_project, make_key, client_for, funnel, method):
    theirs = client_for(make_key(other_project))
    response = getattr(theirs, method)(f"/api/v1/funnels/{funnel.pk}", {"name": "x", "steps": TWO_STEPS}, format="json")
    assert assert_error(response, 404, "not_found")["message"] == "Funnel not found."
    assert Funnel.objects.get().name == "f"


@pytest.mark.django_db
@pytest.mark.parametrize("key_id", ["99999999999999999999999", "9223372036854775807", "abc", "0", "-1", "1.0", "12345"])
@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_missing_key_is_one_404_whatever_the_id(api, key_id, method):
    response = getattr(api, method)(f"/api/v1/keys/{key_id}")
    assert assert_error(response, 404, "not_found")["message"] == "API key not found."


@pytest.mark.django_db
def test_another_projects_key_is_the_same_404(api, other_project, make_key, client_for):
    from accounts.models import ApiKey

    make_key(other_project, name="theirs")
    theirs = ApiKey.objects.get(name="theirs")
    assert assert_error(api.get(f"/api/v1/keys/{theirs.pk}"), 404)["message"] == "API key not found."
    assert assert_error(api.delete(f"/api/v1/keys/{theirs.pk}"), 404)["message"] == "API key not found."
    theirs.refresh_from_db()
    assert theirs.is_active


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/funnels", "/api/v1/keys"])
@pytest.mark.parametrize("query", ["limit=99999999999999999999", "limit=99999999999999999999&offset=1", "offset=-3"])
def test_list_pages_are_bounded(api, funnel, path, query):
    response = api.get(f"{path}?{query}")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,name",
    [
        ("/api/v1/retention?periods=99999999999999999999", "periods"),
        ("/api/v1/retention?periods=-1", "periods"),
        ("/api/v1/retention?days=99999999999999999999", "days"),
        ("/api/v1/retention?periods=" + "9" * 5000, "periods"),
        ("/api/v1/funnels/{pk}/analytics/users?step=99999999999999999999", "step"),
        ("/api/v1/funnels/{pk}/analytics/users?step=1&limit=0", "limit"),
        ("/api/v1/users/u1/journey?limit=-99999999999999999999", "limit"),
        ("/api/v1/users/u1/journey?cursor=%%%", "cursor"),
        ("/api/v1/funnels/{pk}/analytics/users?step=1&cursor=bm9wZQ", "cursor"),
        ("/api/v1/metrics?event=a%00b", "event"),
        ("/api/v1/retention?cohort=a%00", "cohort"),
        ("/api/v1/funnels/{pk}/analytics?breakdown=p%00", "breakdown"),
        ("/api/v1/users/u%001/journey", "userId"),
        ("/api/v1/events/summary?startDate=2024-01-01%00", "startDate"),
    ],
)
def test_query_parameters_out_of_range_are_400_naming_them(api, project, funnel, path, name):
    store_events(project, [("u1", "a", datetime.now(UTC))])
    error = assert_error(api.get(path.format(pk=funnel.pk)), 400, "invalid_input")
    assert name in error["message"] and name in error["details"], error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/v1/users/u1/journey?limit=99999999999999999999", "/api/v1/funnels/{pk}/analytics/users?step=1&limit=10000"],
)
def test_large_limits_are_clamped(api, project, funnel, path):
    store_events(project, [("u1", "a", datetime.now(UTC))])
    assert api.get(path.format(pk=funnel.pk)).status_code == 200
