"""The dashboard in a real browser: sign in through the form, read the overview, and its
numbers are the API's (issue 13)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts.models import Membership
from tests.browser.helpers import sign_in
from tests.helpers import event, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_signs_in_and_reads_the_overview(browser, live_server, project, other_project, make_key):
    key = make_key(project, scopes=["ingest", "read"])
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=key)
    now = datetime.now(UTC)
    batch = [
        event(f"u{i % 9}", name=("view", "click")[i % 2], ts=(now - timedelta(days=i % 4)).isoformat())
        for i in range(30)
    ]
    assert api.post("/api/v1/events", batch, format="json").json()["accepted"] == 30
    run_jobs()
    user = User.objects.create_user("ana", password="a-long-password")
    Membership.objects.create(user=user, organization=project.organization)

    page = browser.new_page()
    page.goto(f"{live_server.url}/p/{project.slug}/")
    assert "/accounts/login/" in page.url  # anonymous: to the login page, and back after it
    sign_in(page, f"{live_server.url}/p/{project.slug}/")

    summary = api.get("/api/v1/events/summary").json()
    shown = {
        name: int(page.get_attribute(f"[data-metric={name}]", "data-value")) for name in ("totalEvents", "uniqueUsers")
    }
    assert (
        shown
        == {"totalEvents": summary["totalEvents"], "uniqueUsers": summary["uniqueUsers"]}
        == {
            "totalEvents": 30,
            "uniqueUsers": 9,
        }
    )
    assert page.inner_text("[data-metric=totalEvents]") == "30"
    bars = page.locator(".bars li")
    assert bars.count() == len(api.get("/api/v1/metrics?interval=day").json()["buckets"])
    assert page.locator(".top-events tbody tr").count() == 2

    response = page.goto(f"{live_server.url}/p/{other_project.slug}/")
    assert response.status == 404 and "Not found" in page.inner_text("h1")
    page.close()
