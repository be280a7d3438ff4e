"""The live page in a real browser (issue 13): a member signs in, and an event posted through
the API shows on the page within 2 s; the event-name filter hides the others; Pause counts
events without showing them until Resume; the page reconnects when the server comes back;
the overview's "active" tile follows the stream.

Django's live_server speaks no WebSocket, so the application (analytics_platform.asgi, HTTP
and WebSocket) is served here by uvicorn on a thread of this process, on the test database
(pytest-django's, shared by every thread), as in the embedded default: a posted event is
stored in the request and published to this process's sockets. (Channels'
ChannelsLiveServerTestCase runs daphne in another process: a unittest class, and no
in-memory SQLite database.)"""

import json
import socket
import threading
import time
import urllib.request

import pytest
import uvicorn
from django.contrib.auth.models import User
from playwright.sync_api import expect

from accounts.models import Membership
from events.live.stats import live_stats
from tests.browser.helpers import sign_in
from tests.helpers import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

SHOWN_WITHIN_MS = 2000


class AsgiServer:
    """uvicorn serving the whole application (analytics_platform.asgi) on a thread of this
    process, at `url`; `restart` stops it (its sockets are closed) and starts it again on
    the same port."""

    def __init__(self):
        self.port = None
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        from analytics_platform.asgi import application

        self.listening = socket.socket()
        self.listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listening.bind(("127.0.0.1", self.port or 0))
        self.port = self.listening.getsockname()[1]
        config = uvicorn.Config(application, lifespan="off", log_level="warning", ws_per_message_deflate=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.listening]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.listening.close()
        # a server thread left running would keep its sockets' pumps in the process's hub,
        # on its loop, into later tests: fail here instead
        assert not self.thread.is_alive(), "uvicorn did not stop"

    def restart(self):
        self.stop()
        self.start()


@pytest.fixture
def asgi_server(transactional_db, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]  # the Host of the pages, the Origin of the socket
    settings.LIVE_STATS_SECONDS = 1
    # One process holds both the sockets (uvicorn's loop, on its thread) and the writer (the
    # test's thread, running the jobs): the in-memory layer, handed over to the sockets' loop
    # (events.live.publish), with Redis configured too. Over Redis, between processes, the
    # stream is tested by tests/integration/test_live_socket.py.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    server = AsgiServer()
    try:
        yield server
    finally:
        server.stop()


def post(server: AsgiServer, key: str, events: list[dict]) -> None:
    request = urllib.request.Request(  # noqa: S310 (http, our own test server)
        f"{server.url}/api/v1/events",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert json.load(response)["accepted"] == len(events)
    run_jobs()  # with Redis: what the worker would do (the embedded default stored them already)


def shows_active_users(page, selector: str, project, timeout=3.0) -> bool:
    """Whether the tile comes to show the stream's count of active users, as the counters
    say now (read again each time: a minute passing may forget users of earlier tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.get_attribute(selector, "data-value") == str(live_stats(project_id=project.id)["activeUsers5m"]):
            return True
        page.wait_for_timeout(100)
    return False


def test_posted_events_appear_live_filtered_and_paused(browser, asgi_server, project, make_key):
    key = make_key(project, scopes=["ingest"])
    user = User.objects.create_user("ana", password="a-long-password")
    Membership.objects.create(user=user, organization=project.organization)

    page = browser.new_page()
    page.goto(f"{asgi_server.url}/p/{project.slug}/live")
    sign_in(page, f"{asgi_server.url}/p/{project.slug}/live")
    status, rows = page.locator("[data-live-status]"), page.locator(".live-events tbody tr")
    expect(status).to_have_text("Live", timeout=5000)  # subscribed: what is stored now will come

    post(asgi_server, key, [{"userId": "u 1/a", "eventName": "page_view", "properties": {"html": "<b>x</b>"}}])
    expect(rows.first).to_contain_text("page_view", timeout=SHOWN_WITHIN_MS)
    link = rows.first.locator("a")
    assert link.inner_text() == "u 1/a"
    assert link.get_attribute("href") == f"/p/{project.slug}/users/u%201%2Fa"
    assert rows.first.locator("td.props").inner_text() == '{"html":"<b>x</b>"}'  # text, not markup
    assert page.locator(".live-events b").count() == 0

    page.fill("input[name=eventName]", "purchase")
    page.click("[data-live-filters] button[type=submit]")
    expect(status).to_have_text("Live: event purchase", timeout=SHOWN_WITHIN_MS)
    assert rows.count() == 0  # the table shows what the filters let through, from now on
    assert page.url.endswith("/live?eventName=purchase")
    # in one batch, in this order: once the purchase shows, the page view would have too
    post(asgi_server, key, [{"userId": "u2", "eventName": "page_view"}, {"userId": "u2", "eventName": "purchase"}])
    expect(rows.first).to_contain_text("purchase", timeout=SHOWN_WITHIN_MS)
    assert rows.count() == 1

    page.click("[data-live-pause]")
    post(asgi_server, key, [{"userId": "u3", "eventName": "purchase"}])
    expect(page.locator('[data-live-count="waiting"]')).to_have_text("1", timeout=SHOWN_WITHIN_MS)
    assert rows.count() == 1  # counted, not shown
    page.click("[data-live-pause]")
    expect(rows).to_have_count(2)
    assert "u3" in rows.first.inner_text() and page.inner_text('[data-live-count="waiting"]') == "0"
    assert page.inner_text('[data-live-count="received"]') == "3"  # the first page view too

    # the stats messages (every second here) carry the writer's counters
    assert shows_active_users(page, '[data-live-stat="activeUsers5m"]', project)

    # the server goes away and comes back: the page reconnects by itself, and streams again
    asgi_server.restart()
    # with the filters it had, after a backoff of 0.5-1 s (and 1-2 s more if that was too early)
    expect(status).to_have_text("Live: event purchase", timeout=10_000)
    post(asgi_server, key, [{"userId": "u5", "eventName": "purchase"}])
    expect(rows.first).to_contain_text("u5", timeout=SHOWN_WITHIN_MS)

    page.goto(f"{asgi_server.url}/p/{project.slug}/")
    post(asgi_server, key, [{"userId": "u4", "eventName": "page_view"}])
    assert shows_active_users(page, '[data-metric="activeUsers5m"]', project)
    page.close()
