"""A funnel in a real browser: an admin signs in, creates it through the form, reads its bars
(the API's counts), opens a step's dropped users and follows one to their journey (issue 13)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts.models import Membership
from funnels.models import Funnel
from tests.browser.helpers import sign_in
from tests.helpers import event, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_creates_a_funnel_reads_its_bars_and_follows_a_dropped_user(browser, live_server, project, make_key):
    key = make_key(project, scopes=["ingest", "read"])
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=key)
    start = datetime.now(UTC) - timedelta(days=3)
    batch = []
    for i in range(12):  # everyone views, 8 sign up, 3 of them buy
        steps = ["view", "signup", "buy"][: 1 + (i < 8) + (i < 3)]
        batch += [
            event(f"u{i:02d}", name=name, ts=(start + timedelta(minutes=i + 5 * k)).isoformat())
            for k, name in enumerate(steps)
        ]
    assert api.post("/api/v1/events", batch, format="json").json()["accepted"] == len(batch)
    run_jobs()
    user = User.objects.create_user("ana", password="a-long-password")
    Membership.objects.create(user=user, organization=project.organization, role=Membership.Role.ADMIN)

    page = browser.new_page()
    page.goto(f"{live_server.url}/p/{project.slug}/funnels")
    sign_in(page, f"{live_server.url}/p/{project.slug}/funnels")
    page.fill("input[name=name]", "Signup to purchase")
    for index, name in enumerate(["view", "signup", "buy"]):
        page.fill(f"input[name=steps-{index}-eventName]", name)
    page.click("text=Create funnel")
    funnel = Funnel.objects.get()
    page.wait_for_url(f"{live_server.url}/p/{project.slug}/funnels/{funnel.id}")
    assert page.inner_text("h1").startswith("Signup to purchase")

    answer = api.get(f"/api/v1/funnels/{funnel.id}/analytics").json()
    bars = page.locator(".funnel-steps li")
    shown = [int(bars.nth(i).get_attribute("data-users")) for i in range(bars.count())]
    assert shown == [step["users"] for step in answer["steps"]] == [12, 8, 3]
    widths = [bars.nth(i).locator(".bar").evaluate("bar => bar.getBoundingClientRect().width") for i in range(3)]
    assert widths[0] > widths[1] > widths[2] > 0

    bars.nth(2).locator("[data-users-link=dropped]").click()  # the 5 who signed up and did not buy
    page.wait_for_selector("#users")
    listed = page.locator("#users [data-user]")
    dropped = api.get(f"/api/v1/funnels/{funnel.id}/analytics/users?step=2&status=dropped").json()["users"]
    assert [listed.nth(i).get_attribute("data-user") for i in range(listed.count())] == [
        row["userId"] for row in dropped
    ]
    assert listed.count() == answer["steps"][2]["dropOff"] == 5
    listed.first.locator("a").click()
    page.wait_for_url(f"{live_server.url}/p/{project.slug}/users/u03")
    assert page.inner_text("h1") == "u03"
    assert page.get_attribute("[data-metric=totalEvents]", "data-value") == "2"
    page.close()
