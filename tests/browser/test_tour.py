"""The README's tour: every page of a seeded project, in a real browser, without an error on
it, each saved as a screenshot; the retention grid's cells are checked against the API. The
screenshots go to the test's own directory, or with TOUR_DIR set
(`TOUR_DIR=docs/tour .venv/bin/pytest tests/browser/test_tour.py`) where the README takes
them from. The same server as the live page's test (uvicorn on a thread: pages and
WebSocket)."""

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.models import Membership
from events.models import Event
from funnels.models import Funnel
from tests.browser.helpers import sign_in
from tests.browser.test_live import asgi_server, post  # noqa: F401 (a fixture)
from tests.helpers import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = {"width": 1280, "height": 860}
RETAINED = "cells => cells.map(cell => cell.dataset.retained)"


def test_every_page_of_a_seeded_project_renders_and_is_pictured(browser, asgi_server, project, make_key, tmp_path):  # noqa: F811
    call_command("seed", project=project.slug, events=6000, users=300, days=21, no_progress=True)
    run_jobs()
    funnel = Funnel.objects.create(
        project=project,
        name="Checkout",
        steps=[{"eventName": name} for name in ("page_view", "add_to_cart", "checkout_start", "purchase")],
    )
    user_id = Event.objects.filter(project=project).values_list("user_id", flat=True).first()
    person = User.objects.create_user("ana", password="a-long-password")
    Membership.objects.create(user=person, organization=project.organization, role="admin")
    out = Path(os.environ.get("TOUR_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport=SIZE)
    console_errors = []  # a missing file (an icon, a script), a script's exception
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.goto(f"{asgi_server.url}/accounts/login/")
    page.screenshot(path=out / "login.png")
    sign_in(page, f"{asgi_server.url}/p/{project.slug}/")
    assert project.timezone == "UTC"
    base = f"{asgi_server.url}/p/{project.slug}"
    since = f"startDate={(datetime.now(UTC) - timedelta(days=20)).date()}"  # the seeded days only
    tour = {
        "overview": f"/?{since}",
        "trends": f"/trends?event=page_view&{since}",
        "funnels": "/funnels",
        "funnel": f"/funnels/{funnel.id}?step=2&status=dropped",
        "retention": f"/retention?cohort=signup&{since}",
        "user": f"/users/{user_id}",
        "settings": "/settings",
    }
    for name, path in tour.items():
        response = page.goto(base + path)
        assert response.status == 200, (name, response.status)
        assert page.locator("[role=alert]").count() == 0, (name, page.inner_text("[role=alert]"))
        page.screenshot(path=out / f"{name}.png")

    # The retention grid, cell by cell, is the API's answer to the same question.
    request = urllib.request.Request(  # noqa: S310 (http, our own test server)
        f"{asgi_server.url}/api/v1/retention?cohort=signup&{since}",
        headers={"X-API-Key": make_key(project, scopes=["read"])},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer = json.load(response)
    page.goto(base + tour["retention"])
    shown = [
        [row.locator("td").nth(1).inner_text(), *row.locator("td[data-retained]").evaluate_all(RETAINED)]
        for row in page.locator("table.grid tbody tr").all()
    ]
    expected = [
        [str(c["size"]), *(str(n) for n, rate in zip(c["retained"], c["rates"], strict=True) if rate is not None)]
        for c in answer["cohorts"]
    ]
    assert shown == expected and len(expected) >= 10 and any(int(n) for row in expected for n in row[2:])

    page.goto(f"{base}/live")
    page.wait_for_selector("[data-live-status]:has-text('Live')", timeout=5000)
    key = make_key(project, scopes=["ingest"])
    names = ("page_view", "add_to_cart", "page_view", "purchase", "page_view", "signup")
    post(asgi_server, key, [{"userId": f"visitor-{i}", "eventName": name} for i, name in enumerate(names)])
    page.locator(".live-events tbody tr").nth(len(names) - 1).wait_for(timeout=2000)
    page.wait_for_selector(f"[data-live-stat=activeUsers5m][data-value='{len(names)}']", timeout=5000)  # stats tick
    page.screenshot(path=out / "live.png")
    assert console_errors == []
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{n}.png" for n in [*tour, "login", "live"])
    page.close()
