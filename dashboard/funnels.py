"""The funnel pages: the project's funnels, the form that creates and edits one (its
organization's admins only), and a funnel's result with the users behind each step.

The form's text becomes the API's JSON body and the API's own FunnelSerializer validates and
saves it, as POST/PUT /funnels do, so the page refuses what the API refuses with the API's
messages. Every number comes from the API's runners (FunnelQuery, FunnelUsersQuery), given
the query parameters /analytics and /analytics/users take."""

import json
import re
from urllib.parse import urlencode

from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from analytics_platform.errors import DomainError
from dashboard.views import RANGE_PARAMS, ProjectPage, bars
from events.queries import SummaryQuery
from funnels.models import DEFAULT_CONVERSION_WINDOW, Funnel
from funnels.queries import FunnelQuery, FunnelUsersQuery
from funnels.selectors import funnel_get
from funnels.serializers import MAX_STEPS, FunnelSerializer

FORM_ROWS = 6  # the step rows a form offers at least; a longer funnel gets two spare ones
STEP_FIELDS = ("eventName", "filters", "timeWindow")
WHOLE = re.compile(r"[0-9]{1,19}")  # longer digit strings stay text: int() of them is slow or refused


class FunnelForm:
    """What the funnel form pages share: the form in the context, and a POST's answer (a
    redirect to the funnel, or the page again with the serializer's messages, 400)."""

    def form_context(self, form: dict, errors: list[tuple[str, str]] = ()) -> dict:
        count = min(MAX_STEPS, max(FORM_ROWS, len(form["steps"]) + 2))
        blank = dict.fromkeys(STEP_FIELDS, "")
        rows = [
            {
                **(form["steps"][index] if index < len(form["steps"]) else blank),
                "index": index,
                "invalid": any(path.split(".")[0] == f"steps[{index}]" for path, _ in errors),
            }
            for index in range(count)
        ]
        events = SummaryQuery(project=self.project, params={}).run()["topEvents"]
        return {
            "form": {**form, "rows": rows, "messages": [f"{path}: {message}" for path, message in errors]},
            "orders": Funnel.Order.values,
            "event_names": [row["eventName"] for row in events],
        }

    def save(self, serializer: FunnelSerializer, form: dict):
        valid = serializer.is_valid()
        errors = [] if valid else messages(serializer.errors)
        if valid:
            funnel = serializer.save(project=self.project)
            return redirect("funnel", slug=self.project.slug, funnel_id=funnel.id)
        context = {"project": self.project, "section": self.section, "query": {}, **self.numbers()}
        context.update(self.form_context(form, errors))
        context["error"] = "The funnel was not saved: see the messages below."
        return self.render_to_response(context, status=400)


class FunnelListPage(FunnelForm, ProjectPage):
    """The project's funnels; its admins create one here."""

    template_name = "dashboard/funnels.html"
    section = "funnels"

    def numbers(self) -> dict:
        funnels = [{"funnel": funnel, "steps": described(funnel)} for funnel in self.project.funnels.all()]
        context = {"funnels": funnels, "can_manage": self.can_manage()}
        if context["can_manage"]:
            context.update(self.form_context(form_of_funnel(None)))
        return context

    def post(self, request, *args, **kwargs):
        if not self.can_manage():
            return self.forbidden()
        form = form_of_post(request.POST)
        return self.save(FunnelSerializer(data=definition(form)), form)


class FunnelEditPage(FunnelForm, ProjectPage):
    """An admin's form for one funnel: saved as PUT /funnels/{id} would (a whole new
    definition), or deleted (action=delete)."""

    template_name = "dashboard/funnel_edit.html"
    section = "funnels"

    def get(self, request, *args, **kwargs):
        if not self.can_manage():
            return self.forbidden()
        return super().get(request, *args, **kwargs)

    def numbers(self) -> dict:
        funnel = funnel_get(project=self.project, funnel_id=self.kwargs["funnel_id"])
        return {"funnel": funnel, **self.form_context(form_of_funnel(funnel))}

    def post(self, request, *args, **kwargs):
        if not self.can_manage():
            return self.forbidden()
        try:
            funnel = funnel_get(project=self.project, funnel_id=kwargs["funnel_id"])
        except DomainError as exc:
            context = {"project": self.project, "section": self.section, "error": exc.message}
            return self.render_to_response(context, status=exc.status_code)
        if request.POST.get("action") == "delete":
            funnel.delete()
            return redirect("funnels", slug=self.project.slug)
        form = form_of_post(request.POST)
        return self.save(FunnelSerializer(funnel, data=definition(form)), form)


class FunnelPage(ProjectPage):
    """A funnel's result (FunnelQuery) as step bars, by the values of a property with
    ?breakdown=, and with ?step=N&status=converted|dropped the users behind a step
    (FunnelUsersQuery)."""

    template_name = "dashboard/funnel.html"
    section = "funnels"
    PARAMS = ("breakdown", *RANGE_PARAMS)
    USER_PARAMS = ("step", "status", "limit", "cursor", *RANGE_PARAMS)

    def numbers(self) -> dict:
        funnel = funnel_get(project=self.project, funnel_id=self.kwargs["funnel_id"])
        query = self.range_query(self.PARAMS)
        result = FunnelQuery(project=self.project, params={**query, "funnelId": funnel.id}).run()
        context = {
            "funnel": funnel,
            "definition": described(funnel),
            "result": result,
            "steps": step_bars(result["steps"], query),
            "breakdown": [{**group, "label": value_label(group["value"])} for group in result.get("breakdown", [])],
            "can_manage": self.can_manage(),
        }
        if "step" in self.request.GET:
            context["users"] = self.step_users(funnel)
        return context

    def step_users(self, funnel: Funnel) -> dict:
        query = self.range_query(self.USER_PARAMS)
        answer = FunnelUsersQuery(project=self.project, params={**query, "funnelId": funnel.id}).run()
        users = [{**user, "journey": journey_url(self.project, user["userId"])} for user in answer["users"]]
        more = None
        if answer["nextCursor"]:
            more = "?" + urlencode(
                {**self.range_query(("breakdown", *self.USER_PARAMS)), "cursor": answer["nextCursor"]}
            )
        return {**answer, "users": users, "more": more}


def step_bars(steps: list[dict], query: dict) -> list[dict]:
    """The steps as bars (their users' share of step 1's), each linking to the users who
    reached it and, from step 2 on, to those who dropped off before it: the ones who
    stopped at the step before, which is the users API's status=dropped of step N-1."""

    def users_link(step: int, status: str) -> str:
        return "?" + urlencode({**query, "step": step, "status": status}) + "#users"

    return [
        {
            **step,
            "converted": users_link(step["step"], "converted"),
            "dropped": users_link(step["step"] - 1, "dropped") if step["step"] > 1 else None,
        }
        for step in bars(steps, key="users")
    ]


def journey_url(project, user_id: str) -> str | None:
    """The user's journey page; None for an id no URL can hold (one with a line break)."""
    try:
        return reverse("user", args=[project.slug, user_id])
    except NoReverseMatch:
        return None


def value_label(value) -> str:
    """A breakdown value as shown: text as it is, other JSON written out, absent as such."""
    if value is None:
        return "(not set)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def filters_text(filters: dict | None) -> str:
    return json.dumps(filters, ensure_ascii=False) if filters else ""


def described(funnel: Funnel) -> list[dict]:
    """The funnel's steps for reading: event name, filters as JSON text, time window."""
    return [
        {
            "eventName": step["eventName"],
            "filters": filters_text(step.get("filters")),
            "timeWindow": step.get("timeWindow"),
        }
        for step in funnel.steps
    ]


def form_of_funnel(funnel: Funnel | None) -> dict:
    """The form's text fields for a funnel (a new funnel's defaults for None)."""
    if funnel is None:
        return {
            "name": "",
            "conversionWindow": str(DEFAULT_CONVERSION_WINDOW),
            "order": Funnel.Order.ORDERED.value,
            "steps": [],
        }
    steps = [
        {**step, "timeWindow": "" if step["timeWindow"] is None else str(step["timeWindow"])}
        for step in described(funnel)
    ]
    return {
        "name": funnel.name,
        "conversionWindow": str(funnel.conversion_window),
        "order": funnel.order,
        "steps": steps,
    }


def form_of_post(post) -> dict:
    """A submitted form's text fields, trimmed, without the blank step rows after the last
    filled one (a blank row between two filled ones is a step without an event name)."""
    steps = [{field: post.get(f"steps-{i}-{field}", "").strip() for field in STEP_FIELDS} for i in range(MAX_STEPS)]
    while steps and not any(steps[-1].values()):
        steps.pop()
    fields = ("name", "conversionWindow", "order")
    return {**{field: post.get(field, "").strip() for field in fields}, "steps": steps}


def definition(form: dict) -> dict:
    """The form as the API's JSON body: a whole number or JSON where the text is one, the
    text itself otherwise (for the serializer to refuse with its own message); empty
    optional fields left out (the API's defaults)."""
    body = {"name": form["name"], "steps": [_step(row) for row in form["steps"]]}
    if form["conversionWindow"]:
        body["conversionWindow"] = _whole(form["conversionWindow"])
    if form["order"]:
        body["order"] = form["order"]
    return body


def _step(row: dict) -> dict:
    step = {"eventName": row["eventName"]}
    if row["filters"]:
        step["filters"] = _json(row["filters"])
    if row["timeWindow"]:
        step["timeWindow"] = _whole(row["timeWindow"])
    return step


def _whole(text: str) -> int | str:
    return int(text) if WHOLE.fullmatch(text) else text


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _json(text: str):
    """Strict JSON (no NaN or Infinity, as the API's parser), or the text when it is not."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return text


def messages(errors: dict) -> list[tuple[str, str]]:
    """The serializer's errors as (field, message), fields named as the API's details name
    them: `name`, `steps`, `steps[1].eventName`, `steps[0].filters.plan`, ..."""
    pairs = []
    for field, detail in errors.items():
        if isinstance(detail, dict):
            pairs.extend((path, str(message)) for path, listed in detail.items() for message in listed)
        else:
            pairs.extend((field, str(message)) for message in detail)
    return pairs
