"""The live stream opened by a dashboard member's session (events/live/consumers.py), through
Channels' WebsocketCommunicator on the real application: a member of the project's
organization gets its events; anyone else gets 4401, as a missing key does; the session
counts only from one of the site's own origins, while a key works from any."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Membership
from tests.events.test_live_stream import T0, connected, next_of, opened, run, store

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "http://testserver"  # the test client's host, in ALLOWED_HOSTS under pytest-django


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def person(name, organization=None, **fields) -> User:
    user = User.objects.create_user(name, password=f"pw-{name}", **fields)
    if organization is not None:
        Membership.objects.create(user=user, organization=organization)
    return user


async def refused(path: str, key: str | None = None, **headers) -> int:
    communicator = await opened(path, key, **headers)
    output = await communicator.receive_output(timeout=3)
    await communicator.disconnect()  # the client's side of the close: the consumer ends
    assert output["type"] == "websocket.close", output  # closed before anything was sent
    return output["code"]


def test_a_members_session_opens_their_projects_stream(project, other_project):
    cookie = session_cookie(person("ana", project.organization))
    root = session_cookie(User.objects.create_superuser("root", password="pw-root"))

    async def body():
        mine = await connected(f"/ws/events?project={project.slug}&eventName=buy", cookie=cookie, origin=SITE)
        everything = await connected(f"/ws/events?project={other_project.slug}", cookie=root, origin=SITE)
        await store(project, [("u1", "view", T0), ("u2", "buy", T0, {"n": 1})])
        await store(other_project, [("u9", "view", T0)])
        got = (await next_of(mine, "event"))["event"]
        assert (got["userId"], got["eventName"], got["properties"]) == ("u2", "buy", {"n": 1})
        assert await mine.receive_nothing(timeout=0.3)  # filtered, and not the other project's
        assert (await next_of(everything, "event"))["event"]["userId"] == "u9"  # a superuser sees all
        for communicator in (mine, everything):
            await communicator.disconnect()

    run(body)


def test_anyone_else_is_refused_as_a_missing_key_is(project, other_project):
    ana = session_cookie(person("ana", project.organization))
    outsider = session_cookie(person("bob", other_project.organization))
    lapsed = person("cid", project.organization)
    lapsed_cookie = session_cookie(lapsed)
    lapsed.is_active = False
    lapsed.save()

    async def body():
        for path, cookie in [
            (f"/ws/events?project={project.slug}", None),  # anonymous
            (f"/ws/events?project={project.slug}", "sessionid=forged-session-key"),
            (f"/ws/events?project={project.slug}", "sessionid=" + "\x00" * 32),  # no lookup: PostgreSQL takes no NUL
            (f"/ws/events?project={project.slug}", outsider),  # another organization's project
            ("/ws/events?project=no-such-project", ana),  # the same answer as a missing one
            ("/ws/events", ana),  # no project named
            ("/ws/events?project=", ana),
            ("/ws/events?project=%00web", ana),  # not a slug: never looked up
            (f"/ws/events?project={'x' * 101}", ana),
            (f"/ws/events?project={project.slug}", lapsed_cookie),  # deactivated since
        ]:
            headers = {"origin": SITE} | ({"cookie": cookie} if cookie else {})
            assert await refused(path, **headers) == 4401, path

    run(body)


def test_a_session_counts_only_from_the_sites_own_origin(project):
    cookie = session_cookie(person("ana", project.organization))
    path = f"/ws/events?project={project.slug}"

    async def body():
        for origin in ("http://evil.example", "http://testserver.evil.example", "null", "http://[::1", None):
            headers = {"cookie": cookie} | ({"origin": origin} if origin is not None else {})
            assert await refused(path, **headers) == 4401, origin
        same_site = await connected(path, cookie=cookie, origin="https://testserver:8443")
        await same_site.disconnect()

    run(body)


def test_a_key_works_from_any_origin_and_wins_over_a_session(project, other_project, make_key):
    key = make_key(project, scopes=["read"])
    cookie = session_cookie(person("bob", other_project.organization))

    async def body():
        for origin in ("http://evil.example", "null"):
            communicator = await connected("/ws/events", key, origin=origin)
            await communicator.disconnect()
        # with a key, the key decides: its project, whatever the session or `project` say
        both = await connected(f"/ws/events?project={other_project.slug}", key, cookie=cookie, origin=SITE)
        await store(other_project, [("u9", "view", T0)])
        await store(project, [("u1", "view", T0)])
        assert (await next_of(both, "event"))["event"]["userId"] == "u1"
        await both.disconnect()
        assert await refused(f"/ws/events?project={project.slug}", "not-a-key", cookie=cookie, origin=SITE) == 4401

    run(body)
