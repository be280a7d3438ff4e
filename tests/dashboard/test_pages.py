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
    assert [(b["day"], b["count"]) for b in context["daily"]] == [(b["start"][:10], b["count"]) for b in daily]
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
