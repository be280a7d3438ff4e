"""Issue 10: no date a client can send is a 500. One supported range, 1970-01-01 to
2999-12-31 (analytics_platform.dates), for every endpoint that takes dates."""

from datetime import UTC, datetime

import pytest

from funnels.models import Funnel
from tests.helpers import assert_error, store_events


@pytest.fixture
def funnel(project):
    return Funnel.objects.create(project=project, name="f", steps=[{"eventName": "a"}, {"eventName": "b"}])


DATED = [
    "/api/v1/events/summary",
    "/api/v1/metrics",
    "/api/v1/metrics?interval=month",
    "/api/v1/retention?period=month&periods=400",
    "/api/v1/funnels/{pk}/analytics",
    "/api/v1/funnels/{pk}/analytics/users?step=1",
    "/api/v1/users/u1/journey",
]
OUTSIDE = [
    "9999-12-31",
    "0001-01-01",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.999999+14:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-12:00",
    "1969-12-31",
    "1969-12-31T23:59:59Z",
    "3000-01-01",
    "3000-01-01T00:00:00+00:00",
]


def _dated(path: str, funnel, **dates) -> str:
    query = "&".join(f"{name}={value.replace('+', '%2B')}" for name, value in dates.items())
    return path.format(pk=funnel.pk) + ("&" if "?" in path else "?") + query


@pytest.mark.django_db
@pytest.mark.parametrize("path", DATED)
@pytest.mark.parametrize("value", OUTSIDE)
@pytest.mark.parametrize("name", ["startDate", "endDate"])
def test_dates_outside_the_supported_range_are_400_naming_the_parameter(api, project, funnel, path, value, name):
    store_events(project, [("u1", "a", datetime.now(UTC))])
    other = {"startDate": "2024-01-01", "endDate": "2024-01-31"}
    other.pop(name)
    error = assert_error(api.get(_dated(path, funnel, **{name: value}, **other)), 400, "invalid_input")
    assert error["message"] == f"{name} must be between 1970-01-01 and 2999-12-31.", error
    assert error["details"] == {name: value}


@pytest.mark.django_db
@pytest.mark.parametrize("path", DATED)
@pytest.mark.parametrize(
    "start,end",
    [
        ("1970-01-01", "1970-01-01"),
        ("1970-01-01T00:00:00+14:00", "1970-01-02T00:00:00-12:00"),
        ("2999-12-01", "2999-12-31"),
        ("2999-12-31T00:00:00+14:00", "2999-12-31T23:59:59.999999-12:00"),
    ],
)
@pytest.mark.parametrize("timezone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_the_edges_of_the_supported_range_answer(api, project, funnel, path, start, end, timezone):
    project.timezone = timezone
    project.save()
    store_events(project, [("u1", "a", datetime(1970, 1, 1, 12, tzinfo=UTC))])
    response = api.get(_dated(path, funnel, startDate=start, endDate=end))
    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["2024-13-01", "2024-02-30", "not a date", "2024-01-01T25:00", "+2024-01-01", "٢٠٢٤-٠١-٠١"]
)
def test_malformed_dates_are_400(api, value):
    error = assert_error(api.get("/api/v1/metrics", {"startDate": value}), 400, "invalid_input")
    assert "startDate" in error["message"] and error["details"] == {"startDate": value}
