"""The dashboard's pages: who sees which project, and that a page's numbers are the API's."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Membership
from tests.helpers import event

pytestmark = pytest.mark.django_db


def member(project, role=Membership.Role.VIEWER, username="ana") -> Client:
    user = User.objects.create_user(username, password="pw-" + username)
    Membership.objects.create(user=user, organization=project.organization, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_an_anonymous_visitor_is_sent_to_the_login_page(project):
    for path in ("/", f"/p/{project.slug}/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_a_member_sees_their_projects_and_nothing_else(project, other_project):
    client = member(project)
    assert client.get("/").status_code == 302  # the only project opens at once
    assert client.get("/")["Location"] == f"/p/{project.slug}/"
    assert client.get(f"/p/{project.slug}/").status_code == 200
    response = client.get(f"/p/{other_project.slug}/")
    assert response.status_code == 404 and b"no such project" in response.content
    assert client.get("/p/no-such-project/").status_code == 404


def test_a_superuser_sees_every_project(project, other_project):
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    page = client.get("/").content.decode()
    assert project.name in page and other_project.name in page
    assert client.get(f"/p/{other_project.slug}/").status_code == 200


def test_the_login_form_signs_in_and_opens_the_project(project):
    member(project)
    client = Client()
    response = client.post("/accounts/login/", {"username": "ana", "password": "pw-ana"}, follow=True)
    assert response.redirect_chain[-1] == (f"/p/{project.slug}/", 302)
    assert response.status_code == 200
    wrong = Client().post("/accounts/login/", {"username": "ana", "password": "nope"})
    assert wrong.status_code == 200 and b"didn't match" in wrong.content


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/Los_Angeles"])
def test_the_overview_shows_the_apis_numbers(tz, project, post_events, client_for, make_key, jobs):
    project.timezone = tz
    project.save()
    now = datetime.now(UTC)
    events = [
        event(f"u{i % 7}", name=("signup", "view", "buy")[i % 3], ts=(now - timedelta(days=i % 5)).isoformat())
        for i in range(40)
    ]
    assert post_events(events).json()["accepted"] == 40
    jobs()
    page = member(project).get(f"/p/{project.slug}/")
    assert page.status_code == 200
    api = client_for(make_key(project, scopes=["read"])).get("/api/v1/events/summary").json()
    context = page.context
    assert context["summary"] == api
    assert (api["totalEvents"], api["uniqueUsers"]) == (40, 7)
    html = page.content.decode()
    assert 'data-metric="totalEvents" data-value="40"' in html
    assert 'data-metric="uniqueUsers" data-value="7"' in html
    daily = client_for(make_key(project, scopes=["read"])).get("/api/v1/metrics?interval=day").json()["buckets"]
    assert [(b["start"], b["count"]) for b in context["daily"]] == [(b["start"], b["count"]) for b in daily]
    assert sum(b["count"] for b in context["daily"]) == 40
    today = datetime.now(ZoneInfo(tz)).date().isoformat()
    api_today = client_for(make_key(project, scopes=["read"])).get(
        f"/api/v1/events/summary?startDate={today}&endDate={today}"
    )
    assert context["today"] == api_today.json()
    assert context["today"]["totalEvents"] == sum(1 for e in events if _local_day(e["timestamp"], tz) == today)


def test_a_bad_date_is_shown_with_the_apis_message_and_status(project):
    response = member(project).get(f"/p/{project.slug}/?startDate=2024-13-01")
    assert response.status_code == 400
    assert b'role="alert"' in response.content and b"startDate" in response.content


def _local_day(iso: str, tz: str) -> str:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).date().isoformat()


@pytest.fixture
def seeded(project, post_events, jobs):
    now = datetime.now(UTC)
    events = [
        event(f"u{i % 6}", name=("signup", "view", "buy")[i % 3], ts=(now - timedelta(days=i % 9, hours=i)).isoformat())
        for i in range(60)
    ]
    assert post_events(events).json()["accepted"] == 60
    jobs()
    return events


@pytest.mark.parametrize(
    ("page", "api", "query"),
    [
        ("trends", "/api/v1/metrics", "?event=view&interval=week"),
        ("trends", "/api/v1/metrics", ""),
        ("retention", "/api/v1/retention", "?period=day&periods=5&type=recurring"),
        ("retention", "/api/v1/retention", "?cohort=signup&returnEvent=buy"),
    ],
)
def test_the_trends_and_retention_pages_show_the_apis_answers(page, api, query, project, seeded, client_for, make_key):
    response = member(project).get(f"/p/{project.slug}/{page}{query}")
    assert response.status_code == 200
    answer = client_for(make_key(project, scopes=["read"])).get(api + query).json()
    shown = response.context["trend" if page == "trends" else "retention"]
    assert {k: v for k, v in shown.items() if k != "cohorts"} == {k: v for k, v in answer.items() if k != "cohorts"}
    if page == "trends":
        assert [(b["start"], b["count"], b["uniqueUsers"]) for b in shown["buckets"]] == [
            (b["start"], b["count"], b["uniqueUsers"]) for b in answer["buckets"]
        ]
    else:
        assert [(c["cohortStart"], c["size"], c["retained"]) for c in shown["cohorts"]] == [
            (c["cohortStart"], c["size"], c["retained"]) for c in answer["cohorts"]
        ]
        assert answer["cohorts"], "the seeded events make cohorts"


def test_the_user_page_shows_the_journey_in_sessions(project, seeded, client_for, make_key):
    client = member(project)
    assert client.get(f"/p/{project.slug}/users?userId=u3")["Location"] == f"/p/{project.slug}/users/u3"
    response = client.get(f"/p/{project.slug}/users/u3")
    assert response.status_code == 200
    answer = client_for(make_key(project, scopes=["read"])).get("/api/v1/users/u3/journey").json()
    assert response.context["journey"] == answer and answer["totalEvents"] == 10
    shown = [item["eventId"] for session in response.context["sessions"] for item in session["events"]]
    assert sorted(shown) == sorted(item["eventId"] for item in answer["events"])
    missing = client.get(f"/p/{project.slug}/users/nobody")
    assert missing.status_code == 404 and b'role="alert"' in missing.content


@pytest.mark.parametrize("path", ["trends", "retention", "users", "users/u3"])
def test_another_projects_pages_are_404(path, project, other_project):
    assert member(project).get(f"/p/{other_project.slug}/{path}").status_code == 404
    assert Client().get(f"/p/{project.slug}/{path}").status_code == 302  # anonymous: to the login page


@pytest.mark.parametrize(
    "path",
    [
        "users/a%00b",
        "users?userId=a%0Ab",
        "trends?event=a%00b",
        "retention?cohort=x%00",
        "?startDate=2024-01-01%00",
    ],
)
def test_a_nul_or_a_line_break_is_a_400_with_a_message(path, project):
    response = member(project).get(f"/p/{project.slug}/{path}", follow=True)
    assert response.status_code == 400
    assert b'role="alert"' in response.content


def test_the_retention_grid_labels_cohorts_by_their_local_dates(project, seeded):
    project.timezone = "America/Los_Angeles"
    project.save()
    response = member(project).get(f"/p/{project.slug}/retention")
    html = response.content.decode()
    starts = [cohort["cohortStart"] for cohort in response.context["retention"]["cohorts"]]
    assert starts and all(f"<td>{start}</td>" in html for start in starts)


def test_the_pages_name_an_icon_and_favicon_ico_leads_to_it(project):
    page = member(project).get(f"/p/{project.slug}/").content.decode()
    assert '<link rel="icon" href="/static/dashboard/favicon.svg" type="image/svg+xml">' in page
    response = Client().get("/favicon.ico")  # what a browser asks for on the admin's and the docs' pages
    assert response.status_code == 301 and response["Location"] == "/static/dashboard/favicon.svg"
    icon = Client().get(response["Location"])
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)
