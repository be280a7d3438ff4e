"""The pages people read their analytics on. Thin, as the API's views are: the project comes
from ProjectPage (the signed-in person's projects only: any other is a 404, as in the API),
every number from the API's own query runners."""

import secrets
import zoneinfo
from datetime import datetime

from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch
from django.views.generic import TemplateView

from accounts.models import Scope
from accounts.selectors import api_key_get, membership_role, projects_for_user
from accounts.services import api_key_create, api_key_set_active, project_timezone_set
from analytics_platform.errors import DomainError, InvalidInput
from analytics_platform.queries import refuse_nul
from events.live.stats import live_stats
from events.queries import JourneyQuery, MetricsQuery, SummaryQuery
from retention.queries import RetentionQuery

RANGE_PARAMS = ("startDate", "endDate")
INTERVALS = ("hour", "day", "week", "month")


class HomePage(LoginRequiredMixin, TemplateView):
    """The person's projects; the only one opens at once."""

    template_name = "dashboard/home.html"

    def get(self, request, *args, **kwargs):
        projects = list(projects_for_user(request.user))
        if len(projects) == 1:
            return redirect("overview", slug=projects[0].slug)
        return self.render_to_response({"projects": projects})


class ProjectPage(LoginRequiredMixin, TemplateView):
    """A page of one project, `self.project`, found by the URL's slug among the signed-in
    person's projects (accounts.selectors.projects_for_user) and nowhere else. A bad query
    parameter (a runner's DomainError) is shown on the page with the API's message and status."""

    section = ""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.project = projects_for_user(request.user).filter(slug=kwargs["slug"]).first()
        if self.project is None:
            return render(request, "dashboard/404.html", status=404)
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        context = {"project": self.project, "section": self.section, "query": self.range_query()}
        try:
            refuse_nul({**request.GET.dict(), **kwargs})
            context.update(self.numbers())
        except DomainError as exc:
            context["error"] = exc.message
            return self.render_to_response(context, status=exc.status_code)
        return self.render_to_response(context)

    def range_query(self, names=RANGE_PARAMS) -> dict:
        """The page's query parameters `names` as the API takes them (absent or empty: the
        API's defaults)."""
        return {name: self.request.GET[name] for name in names if self.request.GET.get(name)}

    def numbers(self) -> dict:
        raise NotImplementedError

    def can_manage(self) -> bool:
        """Whether the person may change the project: its organization's admins, superusers
        (looked up once per request: a POST checks it, then its page shows the forms)."""
        if not hasattr(self, "_can_manage"):
            self._can_manage = (
                membership_role(user=self.request.user, organization=self.project.organization) == "admin"
            )
        return self._can_manage

    def forbidden(self):
        return render(self.request, "dashboard/403.html", {"project": self.project}, status=403)


class OverviewPage(ProjectPage):
    template_name = "dashboard/overview.html"
    section = "overview"

    def numbers(self) -> dict:
        query = self.range_query()
        summary = SummaryQuery(project=self.project, params=query).run()
        today = datetime.now(self.project.tzinfo).date().isoformat()
        today_summary = SummaryQuery(project=self.project, params={"startDate": today, "endDate": today}).run()
        daily = MetricsQuery(project=self.project, params={**query, "interval": "day"}).run()["buckets"]
        return {
            "summary": summary,
            "today": today_summary,
            "daily": bars(daily),
            "live": live_stats(project_id=self.project.id),
        }


def bars(buckets: list[dict], key: str = "count") -> list[dict]:
    """The buckets for a bar chart: each with its `key`'s share of the largest (the bar's
    length, in %)."""
    peak = max((bucket[key] for bucket in buckets), default=0)
    return [{**bucket, "share": round(100 * bucket[key] / peak, 1) if peak else 0} for bucket in buckets]


class TrendsPage(ProjectPage):
    template_name = "dashboard/trends.html"
    section = "trends"
    PARAMS = ("event", "interval", *RANGE_PARAMS)

    def numbers(self) -> dict:
        query = self.range_query(self.PARAMS)
        trend = MetricsQuery(project=self.project, params=query).run()
        events = SummaryQuery(project=self.project, params=self.range_query()).run()["topEvents"]
        return {
            "trend": trend,
            "bars": bars(trend["buckets"]),
            "event_names": [row["eventName"] for row in events],
            "intervals": INTERVALS,
        }


class RetentionPage(ProjectPage):
    template_name = "dashboard/retention.html"
    section = "retention"
    PARAMS = ("cohort", "returnEvent", "period", "periods", "type", *RANGE_PARAMS)

    def numbers(self) -> dict:
        retention = RetentionQuery(project=self.project, params=self.range_query(self.PARAMS)).run()
        for cohort in retention["cohorts"]:
            cohort["cells"] = list(zip(cohort["retained"], cohort["rates"], strict=True))
        return {"retention": retention, "periods": ("day", "week", "month")}


class UserPage(ProjectPage):
    """One user's journey, grouped into its sessions, a page of events at a time."""

    template_name = "dashboard/user.html"
    section = "users"

    def numbers(self) -> dict:
        params = {**self.range_query(("cursor", *RANGE_PARAMS)), "userId": self.kwargs["user_id"]}
        journey = JourneyQuery(project=self.project, params=params).run()
        return {"user_id": self.kwargs["user_id"], "journey": journey, "sessions": sessions_with_events(journey)}


class UserSearchPage(ProjectPage):
    """?userId= opens that user's journey."""

    template_name = "dashboard/users.html"
    section = "users"

    def get(self, request, *args, **kwargs):
        context = {"project": self.project, "section": self.section}
        user_id = request.GET.get("userId", "").strip()
        if user_id:
            try:
                return redirect("user", slug=self.project.slug, user_id=user_id)
            except NoReverseMatch:  # a line break: no URL holds it, and no journey has it
                context["error"] = "userId must not contain line breaks."
                return self.render_to_response(context, status=400)
        return self.render_to_response(context)


def sessions_with_events(journey: dict) -> list[dict]:
    """The journey's sessions that have events on this page, each with them: by sessionId,
    and the events without one by the session's time span (the API's 30-minute runs)."""
    shown = []
    for session in journey["sessions"]:
        if session["sessionId"] is not None:
            events = [e for e in journey["events"] if e["sessionId"] == session["sessionId"]]
        else:
            start, end = datetime.fromisoformat(session["start"]), datetime.fromisoformat(session["end"])
            events = [
                e
                for e in journey["events"]
                if e["sessionId"] is None and start <= datetime.fromisoformat(e["timestamp"]) <= end
            ]
        if events:
            shown.append({**session, "events": events})
    return shown


class SettingsPage(ProjectPage):
    """The project's timezone and API keys. Everyone who sees the project sees them; an
    organization's admins (and superusers) change them. A new key is shown once, in the
    answer to the POST that made it (never stored in plaintext, not even in the session).
    So that a reload of that answer does not make a second key, the key form carries a
    one-time token kept in the session (FORM_TOKENS): a form sent again is refused."""

    template_name = "dashboard/settings.html"
    section = "settings"
    FORM_TOKENS, KEPT_TOKENS = "settings-key-forms", 20  # the last forms shown, per session

    def numbers(self) -> dict:
        can_manage = self.can_manage()
        return {
            "keys": list(self.project.api_keys.order_by("-is_active", "-created_at")),
            "scopes": Scope.choices,
            "can_manage": can_manage,
            "timezones": sorted(zoneinfo.available_timezones()),
            "form_token": self.form_token() if can_manage else None,
        }

    def form_token(self) -> str:
        token = secrets.token_urlsafe(12)
        session = self.request.session
        session[self.FORM_TOKENS] = [*session.get(self.FORM_TOKENS, []), token][-self.KEPT_TOKENS :]
        return token

    def form_token_use(self, token: str) -> None:
        """Spends the form's token; InvalidInput for one not shown, or spent already."""
        tokens = self.request.session.get(self.FORM_TOKENS, [])
        if token not in tokens:
            raise InvalidInput(
                "This form was sent already (a reload of the page?): the key it made is not shown "
                "again. Create another with the form below if you need one."
            )
        self.request.session[self.FORM_TOKENS] = [t for t in tokens if t != token]

    def post(self, request, *args, **kwargs):
        if not self.can_manage():
            return self.forbidden()
        context = {"project": self.project, "section": self.section, "query": {}}
        try:
            refuse_nul(request.POST.dict())
            context.update(self.change(request.POST))
        except DomainError as exc:
            context["error"] = exc.message
            context.update(self.numbers())
            return self.render_to_response(context, status=exc.status_code)
        context.update(self.numbers())
        return self.render_to_response(context)

    def change(self, form) -> dict:
        action = form.get("action")
        if action == "timezone":
            project_timezone_set(project=self.project, timezone_name=form.get("timezone", "").strip())
            return {"notice": f"Timezone set to {self.project.timezone}."}
        if action == "create_key":
            name = form.get("name", "").strip()
            if not name or len(name) > 200:
                raise InvalidInput("A key needs a name of 1 to 200 characters.")
            self.form_token_use(form.get("form", ""))
            api_key, plaintext = api_key_create(project=self.project, name=name, scopes=form.getlist("scopes"))
            return {
                "new_key": plaintext,
                "notice": f"Key “{api_key.name}” created. Copy it now: it is not shown again.",
            }
        if action == "revoke":
            api_key = api_key_get(project=self.project, key_id=form.get("key", ""))
            api_key_set_active(api_key=api_key, is_active=False)
            return {"notice": f"Key “{api_key.name}” ({api_key.prefix}…) revoked."}
        raise InvalidInput("Unknown action.")
