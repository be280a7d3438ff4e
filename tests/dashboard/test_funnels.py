"""The funnel pages: every number shown is the API's answer to the same query, the users
behind a step are the API's, and the form refuses what the API refuses, with its messages."""

import html
import json
import random
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.models import Membership
from funnels.models import Funnel
from tests.dashboard.test_pages import member
from tests.helpers import store_events

pytestmark = pytest.mark.django_db

STEPS = [
    {"eventName": "view", "filters": {}, "timeWindow": None},
    {"eventName": "cart", "filters": {"price": {"op": "gte", "value": 10}}, "timeWindow": None},
    {"eventName": "buy", "filters": {}, "timeWindow": 6 * 3600},
]
# data- attribute of a step → the API's field and how to read it back
FIELDS = {
    "data-users": ("users", int),
    "data-conversion-rate": ("conversionRate", float),
    "data-step-conversion-rate": ("stepConversionRate", float),
    "data-drop-off": ("dropOff", int),
    "data-avg-time": ("avgTimeToConvertSeconds", lambda text: float(text) if text else None),
    "data-median-time": ("medianTimeToConvertSeconds", lambda text: float(text) if text else None),
}
QUERY = "?startDate=2024-03-09&endDate=2024-03-11"


class Shown(HTMLParser):
    """What a funnel page shows: its steps, each breakdown row's steps, its listed users and
    its links to users, read from the data- attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.steps, self.breakdown, self.users, self.links, self.metrics = [], {}, [], [], {}
        self.journeys, self.more, self._row, self._user = {}, None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-breakdown" in attrs:
            self._row = self.breakdown.setdefault(attrs["data-breakdown"], [])
        if "data-step" in attrs:
            step = {"step": int(attrs["data-step"])}
            step.update({field: read(attrs[name]) for name, (field, read) in FIELDS.items()})
            (self.steps if self._row is None else self._row).append(step)
        if "data-user" in attrs:
            self._user = attrs["data-user"]
            self.users.append(self._user)
        if tag == "a" and self._user is not None:
            self.journeys[self._user] = attrs["href"]
        if "data-users-link" in attrs:
            self.links.append((attrs["data-users-link"], attrs["href"]))
        if attrs.get("rel") == "next":
            self.more = attrs["href"]
        if "data-metric" in attrs:
            self.metrics[attrs["data-metric"]] = attrs["data-value"]

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = self._user = None


def api_steps(steps: list[dict]) -> list[dict]:
    return [{"step": step["step"], **{field: step[field] for field, _ in FIELDS.values()}} for step in steps]


def generated(tz: ZoneInfo, seed: str) -> list[tuple]:
    """40 users around the three days from 2024-03-09 local (the US DST change among them):
    a path through the funnel that goes on at random (a step-1 event carries a plan, or
    none; a cheap cart does not count), and stray events around it."""
    rng = random.Random(seed)
    first = datetime(2024, 3, 9, tzinfo=tz).astimezone(UTC)
    events = []
    for u in range(40):
        user, plan = f"user{u:02d}", ("pro", "free", "team", None)[u % 4]
        moment = first + timedelta(minutes=rng.randint(-600, 4 * 1440))
        path = [("view", {"plan": plan} if plan else {}), ("cart", {"price": rng.choice([5, 10, 20.5])}), ("buy", {})]
        for name, properties in path[: rng.choice([1, 2, 2, 3, 3, 3])]:
            events.append((user, name, moment, properties))
            moment += timedelta(minutes=rng.randint(0, 600))
        for _ in range(rng.randint(0, 4)):
            stray = first + timedelta(minutes=rng.randint(-1440, 5 * 1440))
            events.append((user, rng.choice(["view", "cart", "buy", "other"]), stray, {"price": 12}))
    return events


@pytest.fixture
def shop(project):
    return Funnel.objects.create(project=project, name="Shop", steps=STEPS, conversion_window=86400)


@pytest.fixture
def reader(project, make_key, client_for):
    return client_for(make_key(project, scopes=["read"]))


@pytest.mark.parametrize("tz", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
@pytest.mark.parametrize("breakdown", ["", "&breakdown=plan"])
def test_the_funnel_page_shows_the_apis_numbers(tz, breakdown, project, shop, make_key, client_for):
    project.timezone = tz
    project.save()
    store_events(project, generated(ZoneInfo(tz), tz))
    query = QUERY + breakdown
    page = member(project).get(f"/p/{project.slug}/funnels/{shop.id}{query}")
    assert page.status_code == 200
    api = client_for(make_key(project, scopes=["read"])).get(f"/api/v1/funnels/{shop.id}/analytics{query}").json()
    assert page.context["result"] == api
    shown = Shown(page.content.decode())
    assert shown.steps == api_steps(api["steps"])
    assert api["steps"][0]["users"] > api["steps"][2]["users"] > 0
    assert float(shown.metrics["overallConversionRate"]) == api["overallConversionRate"]
    assert int(shown.metrics["entered"]) == api["steps"][0]["users"]
    assert datetime.fromisoformat(api["startDate"]) == datetime(2024, 3, 9, tzinfo=ZoneInfo(tz))
    if breakdown:
        labels = {None: "(not set)"}
        want = {labels.get(group["value"], group["value"]): api_steps(group["steps"]) for group in api["breakdown"]}
        assert shown.breakdown == want and set(want) == {"pro", "free", "team", "(not set)"}
    else:
        assert shown.breakdown == {} and "breakdown" not in api


def test_each_steps_users_are_the_apis(project, shop, reader):
    store_events(project, generated(ZoneInfo("UTC"), "users"))
    client = member(project)
    url = f"/p/{project.slug}/funnels/{shop.id}"
    page = client.get(url + QUERY)
    steps = page.context["result"]["steps"]
    links = Shown(page.content.decode()).links
    assert [status for status, _ in links] == ["converted", "converted", "dropped", "converted", "dropped"]
    counts = [steps[0]["users"], steps[1]["users"], steps[1]["dropOff"], steps[2]["users"], steps[2]["dropOff"]]
    for (status, href), count in zip(links, counts, strict=True):
        query = href.split("#")[0]
        listed = client.get(url + query)
        assert listed.status_code == 200
        answer = reader.get(f"/api/v1/funnels/{shop.id}/analytics/users{query}").json()
        shown = Shown(listed.content.decode())
        assert shown.users == [user["userId"] for user in answer["users"]]
        assert len(shown.users) == count  # the link's figure: who reached the step, or dropped off before it
        assert answer["status"] == status
        for user in shown.users:
            assert shown.journeys[user] == f"/p/{project.slug}/users/{user}"
    assert steps[1]["dropOff"] > 0 and steps[2]["dropOff"] > 0


def test_step_users_are_paged_as_the_api_pages_them(project, shop, reader):
    store_events(project, generated(ZoneInfo("UTC"), "pages"))
    client = member(project)
    url = f"/p/{project.slug}/funnels/{shop.id}"
    query, seen = QUERY + "&step=1&status=converted&limit=7", []
    while query:
        shown = Shown(client.get(url + query).content.decode())
        answer = reader.get(f"/api/v1/funnels/{shop.id}/analytics/users{query}").json()
        assert shown.users == [user["userId"] for user in answer["users"]] and len(shown.users) <= 7
        seen += shown.users
        query = shown.more and html.unescape(shown.more).split("#")[0]
        assert (query is None) == (answer["nextCursor"] is None)
    assert len(seen) == len(set(seen)) > 7


def test_a_user_id_no_url_can_hold_is_listed_without_a_link(project, shop):
    store_events(project, [("a\nb", "view", datetime(2024, 3, 10, 9, tzinfo=UTC), {})])
    page = member(project).get(f"/p/{project.slug}/funnels/{shop.id}{QUERY}&step=1")
    assert page.status_code == 200
    shown = Shown(page.content.decode())
    assert shown.users == ["a\nb"] and "a\nb" not in shown.journeys


@pytest.mark.parametrize(
    "query",
    [
        "?startDate=2024-13-01",
        "?startDate=2024-03-11&endDate=2024-03-09",
        "?step=4",
        "?step=x",
        "?step=",
        "?step=1&status=maybe",
        "?step=1&limit=0",
        "?step=1&cursor=%25%25%25",
        "?breakdown=" + "p" * 201,
        "?breakdown=a%00b",
    ],
)
def test_a_bad_query_parameter_is_the_runners_message_and_status(query, project, shop, reader):
    response = member(project).get(f"/p/{project.slug}/funnels/{shop.id}{query}")
    answer = reader.get(f"/api/v1/funnels/{shop.id}/analytics{'/users' if 'step' in query else ''}{query}")
    assert response.status_code == answer.status_code == 400
    assert response.context["error"] == answer.json()["error"]["message"]
    assert b'role="alert"' in response.content


@pytest.mark.parametrize("funnel_id", ["abc", "0", "-1", "1.5", "99999999999999999999999", "%00"])
def test_a_malformed_funnel_id_is_a_404_page(funnel_id, project):
    client = member(project, role=Membership.Role.ADMIN)
    for path in (f"funnels/{funnel_id}", f"funnels/{funnel_id}/edit"):
        response = client.get(f"/p/{project.slug}/{path}")
        assert response.status_code in (404, 400) and b'role="alert"' in response.content
        assert response.status_code == 404 or funnel_id == "%00"  # a NUL is refused as a parameter
    refused = client.post(f"/p/{project.slug}/funnels/{funnel_id}/edit", {"action": "delete"})
    assert refused.status_code == 404


def test_another_organizations_funnels_and_project_are_404(project, other_project, shop):
    theirs = Funnel.objects.create(project=other_project, name="Theirs", steps=STEPS)
    client = member(project, role=Membership.Role.ADMIN)
    for path in (
        f"/p/{project.slug}/funnels/{theirs.id}",
        f"/p/{project.slug}/funnels/{theirs.id}/edit",
        f"/p/{other_project.slug}/funnels",
        f"/p/{other_project.slug}/funnels/{theirs.id}",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/p/{project.slug}/funnels/{theirs.id}/edit", {"action": "delete"}).status_code == 404
    assert client.post(f"/p/{other_project.slug}/funnels", form(name="Mine")).status_code == 404
    assert Funnel.objects.filter(project=other_project).get() == theirs and Funnel.objects.count() == 2
    listed = client.get(f"/p/{project.slug}/funnels").content.decode()
    assert "Shop" in listed and "Theirs" not in listed
    assert Client().get(f"/p/{project.slug}/funnels/{shop.id}").status_code == 302  # anonymous: to the login page


def form(name="Signup", steps=("view", "cart", "buy"), **fields) -> dict:
    """The funnel form as a browser posts it: every step row, blank ones too."""
    body = {"name": name, "conversionWindow": "1209600", "order": "ordered"}
    for index in range(6):
        body[f"steps-{index}-eventName"] = steps[index] if index < len(steps) else ""
        body[f"steps-{index}-filters"] = ""
        if index:
            body[f"steps-{index}-timeWindow"] = ""
    return {**body, **fields}


def test_an_admin_creates_edits_and_deletes_a_funnel(project, reader):
    admin = member(project, role=Membership.Role.ADMIN)
    url = f"/p/{project.slug}/funnels"
    assert b"New funnel" in admin.get(url).content
    created = admin.post(
        url,
        form(
            **{
                "steps-1-filters": '{"price": {"op": "gte", "value": 10}, "plan": "pro"}',
                "steps-2-timeWindow": "3600",
                "conversionWindow": "86400",
                "order": "strict",
            }
        ),
    )
    funnel = Funnel.objects.get()
    assert created.status_code == 302 and created["Location"] == f"{url}/{funnel.id}"
    assert reader.get(f"/api/v1/funnels/{funnel.id}").json() | {"id": 0, "createdAt": "", "updatedAt": ""} == {
        "id": 0,
        "name": "Signup",
        "steps": [
            {"eventName": "view", "filters": {}, "timeWindow": None},
            {"eventName": "cart", "filters": {"price": {"op": "gte", "value": 10}, "plan": "pro"}, "timeWindow": None},
            {"eventName": "buy", "filters": {}, "timeWindow": 3600},
        ],
        "conversionWindow": 86400,
        "order": "strict",
        "createdAt": "",
        "updatedAt": "",
    }
    edit = admin.get(f"{url}/{funnel.id}/edit")
    assert edit.status_code == 200
    rows = edit.context["form"]["rows"]
    assert [row["eventName"] for row in rows[:4]] == ["view", "cart", "buy", ""]
    assert json.loads(rows[1]["filters"]) == {"price": {"op": "gte", "value": 10}, "plan": "pro"}
    assert rows[2]["timeWindow"] == "3600"
    edited = admin.post(f"{url}/{funnel.id}/edit", form(name="Two steps", steps=("signup", "buy")))
    assert edited.status_code == 302 and edited["Location"] == f"{url}/{funnel.id}"
    funnel.refresh_from_db()
    assert funnel.name == "Two steps" and [step["eventName"] for step in funnel.steps] == ["signup", "buy"]
    assert funnel.order == "ordered" and funnel.conversion_window == 1209600
    assert admin.get(f"{url}/{funnel.id}").status_code == 200
    deleted = admin.post(f"{url}/{funnel.id}/edit", {"action": "delete"})
    assert deleted.status_code == 302 and deleted["Location"] == url and Funnel.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ({"steps-1-eventName": "", "steps-2-eventName": ""}, {"steps": [{"eventName": "view"}]}),
        ({"name": ""}, {"name": ""}),
        ({"steps-1-eventName": "", "steps-3-eventName": "buy"}, {"steps": [{"eventName": "view"}, {"eventName": ""}]}),
        ({"steps-1-filters": "{not json"}, {"steps": [{"eventName": "view"}, {"eventName": "c", "filters": "{x"}]}),
        ({"steps-1-filters": '{"price": {"op": "gt", "value": "ten"}}'}, None),
        ({"steps-1-filters": '{"p": {"op": "gt", "value": NaN}}'}, None),
        ({"steps-1-filters": '{"p": ' + "[" * 5000 + "]" * 5000 + "}"}, None),  # too deep to parse
        ({"steps-1-filters": '{"p": ' + "[" * 800 + "]" * 800 + "}"}, None),  # parsed, too deep to check
        ({"steps-1-filters": '{"p": "\\u0000"}'}, None),
        ({"steps-1-timeWindow": "an hour"}, {"steps": [{"eventName": "v"}, {"eventName": "c", "timeWindow": "x"}]}),
        ({"steps-1-timeWindow": "9" * 40}, None),
        ({"conversionWindow": "0"}, {"conversionWindow": 0}),
        ({"conversionWindow": "1.5"}, {"conversionWindow": 1.5}),
        ({"order": "loose"}, {"order": "loose"}),
        ({"name": "n\x00"}, {"name": "n\x00"}),
        ({"steps-0-eventName": "x" * 201}, None),
    ],
)
def test_a_bad_definition_shows_the_serializers_messages_changes_nothing(fields, body, project, make_key, client_for):
    admin = member(project, role=Membership.Role.ADMIN)
    response = admin.post(f"/p/{project.slug}/funnels", form(**fields))
    assert response.status_code == 400 and Funnel.objects.count() == 0
    shown = response.context["form"]["messages"]
    assert shown and all(html.escape(message) in response.content.decode() for message in shown)
    assert response.context["form"]["name"] == form(**fields)["name"].strip()  # what was typed is kept
    if body is not None:  # the API refuses the same definition with the same messages
        api = client_for(make_key(project, scopes=["admin"]))
        refused = api.post("/api/v1/funnels", {"name": "n", "steps": STEPS, **body}, format="json")
        details = refused.json()["error"]["details"]
        api_messages = [
            f"{path}: {message}"
            for field, detail in details.items()
            for path, listed in (detail.items() if isinstance(detail, dict) else [(field, detail)])
            for message in listed
        ]
        paths = {message.split(":")[0] for message in shown}
        assert paths == {message.split(":")[0] for message in api_messages}
        assert {m.split(": ", 1)[1] for m in shown} == {m.split(": ", 1)[1] for m in api_messages}
        assert Funnel.objects.count() == 0


def test_an_edit_refused_changes_nothing(project, shop):
    admin = member(project, role=Membership.Role.ADMIN)
    before = Funnel.objects.values().get()
    response = admin.post(f"/p/{project.slug}/funnels/{shop.id}/edit", form(name="", steps=("only",)))
    assert response.status_code == 400
    assert [m.split(":")[0] for m in response.context["form"]["messages"]] == ["name", "steps"]
    assert not any(row["invalid"] for row in response.context["form"]["rows"])
    marked = admin.post(f"/p/{project.slug}/funnels", form(**{"steps-1-timeWindow": "soon"}))
    assert [row["invalid"] for row in marked.context["form"]["rows"]] == [False, True, False, False, False, False]
    assert Funnel.objects.values().get() == before


def test_a_viewer_reads_funnels_but_cannot_change_them(project, shop):
    viewer = member(project)
    url = f"/p/{project.slug}/funnels"
    listed = viewer.get(url)
    assert listed.status_code == 200 and b"Shop" in listed.content and b"New funnel" not in listed.content
    assert viewer.get(f"{url}/{shop.id}").status_code == 200
    before = Funnel.objects.values().get()
    for path, body in (
        (url, form()),
        (f"{url}/{shop.id}/edit", form(name="Mine")),
        (f"{url}/{shop.id}/edit", {"action": "delete"}),
    ):
        refused = viewer.post(path, body)
        assert refused.status_code == 403 and b"Only an administrator" in refused.content
    assert viewer.get(f"{url}/{shop.id}/edit").status_code == 403
    assert Funnel.objects.values().get() == before  # nothing created, edited or deleted
    assert Client().post(url, form()).status_code == 302 and Funnel.objects.count() == 1


def test_a_superuser_manages_any_projects_funnels(other_project):
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    response = client.post(f"/p/{other_project.slug}/funnels", form())
    assert response.status_code == 302 and Funnel.objects.get().project == other_project


def test_the_forms_need_the_csrf_token(project, shop):
    user = User.objects.create_user("ada", password="pw-ada")
    Membership.objects.create(user=user, organization=project.organization, role=Membership.Role.ADMIN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    url = f"/p/{project.slug}/funnels"
    before = Funnel.objects.values().get()
    assert client.post(url, form()).status_code == 403
    assert client.post(f"{url}/{shop.id}/edit", form(name="Mine")).status_code == 403
    assert client.post(f"{url}/{shop.id}/edit", {"action": "delete"}).status_code == 403
    assert Funnel.objects.values().get() == before
    client.get(url)  # the form's page sets the token
    token = client.cookies["csrftoken"].value
    assert client.post(url, {**form(), "csrfmiddlewaretoken": token}).status_code == 302
    assert Funnel.objects.count() == 2
