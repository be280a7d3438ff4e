"""The live page (dashboard/live.py): who sees it, and what it gives live.js. The stream
itself: tests/events/test_live_session.py and tests/browser/test_live.py."""

import pytest
from django.test import Client

from tests.dashboard.test_pages import member

pytestmark = pytest.mark.django_db


def test_a_member_gets_the_live_page_of_their_project(project):
    response = member(project).get(f"/p/{project.slug}/live?eventName=buy")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-live="{project.slug}"' in html and f'data-users-url="/p/{project.slug}/users"' in html
    assert 'name="eventName" value="buy"' in html and 'name="userId" value=""' in html
    assert '/static/dashboard/live.js"' in html
    assert f'<a href="/p/{project.slug}/live" aria-current="page">Live</a>' in html
    # the stats as they are when the page is made (counters are per process: other tests' too)
    live = response.context["live"]
    assert set(live) == {"type", "eventsPerSecond", "activeUsers5m"}
    assert f'data-live-stat="activeUsers5m" data-value="{live["activeUsers5m"]}"' in html


def test_the_overview_tile_is_kept_live_by_the_same_script(project):
    html = member(project).get(f"/p/{project.slug}/").content.decode()
    assert 'data-live-stat="activeUsers5m"' in html and '/static/dashboard/live.js"' in html


def test_another_organizations_live_page_is_404_and_anonymous_goes_to_login(project, other_project):
    client = member(project)
    assert client.get(f"/p/{other_project.slug}/live").status_code == 404
    assert client.get("/p/no-such-project/live").status_code == 404
    response = Client().get(f"/p/{project.slug}/live")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/p/{project.slug}/live"


def test_a_nul_in_a_filter_is_a_400_not_a_500(project):
    response = member(project).get(f"/p/{project.slug}/live?userId=%00")
    assert response.status_code == 400
