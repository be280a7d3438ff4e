"""The tracking script in a real browser: a page on another origin includes
/static/analytics.js with an ingest key, and its page views, tracked events, identify,
retries and the beacon on leaving end up stored (issue 12)."""

import http.server
import threading
import time
from functools import partial

import pytest

from events.models import Event
from tests.helpers import run_jobs

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = """<!doctype html><html><head><title>Shop</title>
<script>window.analytics = [["track", "early_call", {{"queued": true}}]];</script>
<script src="{server}/static/analytics.js" data-key="{key}" defer></script></head>
<body><button id="buy" onclick="analytics.track('purchase', {{amount: 12.5}})">Buy</button>
<a id="next" href="/other.html">next</a></body></html>"""


@pytest.fixture
def site(tmp_path, live_server, make_key, project):
    """A web site on another origin (127.0.0.1 and its own port; the platform is at localhost)."""
    key = make_key(project, scopes=["ingest"])
    server = live_server.url.replace("127.0.0.1", "localhost")
    (tmp_path / "index.html").write_text(PAGE.format(server=server, key=key))
    (tmp_path / "other.html").write_text("<!doctype html><title>Other</title>")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def stored(page, project, until, timeout=15.0) -> list[Event]:
    """The project's events once `until(events)` holds (or the timeout passed). Waits with
    the page's clock, so Playwright goes on handling the page's routes meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        run_jobs()  # with Redis: what the worker would do
        events = list(Event.objects.filter(project=project).order_by("timestamp", "id"))
        if until(events) or time.monotonic() > deadline:
            return events
        page.wait_for_timeout(100)


def test_a_page_on_another_origin_sends_its_events(browser, site, project):
    page = browser.new_page()
    failed_once = []

    def flaky(route):  # the first send fails: the script retries the same events
        if not failed_once:
            failed_once.append(route.request.post_data)
            route.abort()
        else:
            route.continue_()

    page.route("**/api/v1/events", flaky)
    page.goto(f"{site}/index.html?utm=x")
    names = lambda events: [e.event_name for e in events]  # noqa: E731
    events = stored(page, project, until=lambda events: {"page_view", "early_call"} <= set(names(events)))
    assert sorted(names(events)) == ["early_call", "page_view"] and failed_once  # once each, after a retry
    view = next(e for e in events if e.event_name == "page_view")
    assert view.page_url == f"{site}/index.html?utm=x" and view.properties["path"] == "/index.html"
    assert view.properties["title"] == "Shop" and view.session_id
    anonymous = view.user_id

    page.click("#buy")
    page.evaluate("analytics.identify('user-42')")
    page.evaluate("analytics.track('after_login')")
    events = stored(page, project, until=lambda events: "after_login" in names(events))
    by_name = {e.event_name: e for e in events}
    assert by_name["purchase"].user_id == anonymous and by_name["purchase"].properties == {"amount": 12.5}
    assert by_name["identify"].user_id == "user-42" and by_name["identify"].properties["anonymousId"] == anonymous
    assert by_name["after_login"].user_id == "user-42"
    assert {e.session_id for e in events} == {view.session_id}

    page.evaluate("analytics.track('leaving')")  # then the page goes away before the 1 s batch
    page.click("#next")
    page.wait_for_url(f"{site}/other.html")
    events = stored(page, project, until=lambda events: "leaving" in names(events))
    assert "leaving" in names(events)  # sent by sendBeacon when the page was hidden
    assert len(events) == len({e.event_id for e in events}) == 6
    page.close()
