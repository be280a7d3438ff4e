"""The pages people read their analytics on. Thin, as the API's views are: the project comes
from ProjectPage (the signed-in person's projects only: any other is a 404, as in the API),
every number from the API's own query runners."""

from datetime import datetime

from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.views.generic import TemplateView

from accounts.selectors import projects_for_user
from analytics_platform.errors import DomainError
from events.live.stats import live_stats
from events.queries import MetricsQuery, SummaryQuery

RANGE_PARAMS = ("startDate", "endDate")


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
            context.update(self.numbers())
        except DomainError as exc:
            context["error"] = exc.message
            return self.render_to_response(context, status=exc.status_code)
        return self.render_to_response(context)

    def range_query(self) -> dict:
        """The page's date range as the API takes it (absent: the API's defaults)."""
        return {name: self.request.GET[name] for name in RANGE_PARAMS if self.request.GET.get(name)}

    def numbers(self) -> dict:
        raise NotImplementedError


class OverviewPage(ProjectPage):
    template_name = "dashboard/overview.html"
    section = "overview"

    def numbers(self) -> dict:
        query = self.range_query()
        summary = SummaryQuery(project=self.project, params=query).run()
        today = datetime.now(self.project.tzinfo).date().isoformat()
        today_summary = SummaryQuery(project=self.project, params={"startDate": today, "endDate": today}).run()
        daily = MetricsQuery(project=self.project, params={**query, "interval": "day"}).run()["buckets"]
        peak = max((bucket["count"] for bucket in daily), default=0)
        for bucket in daily:
            bucket["day"] = bucket["start"][:10]
            bucket["share"] = round(100 * bucket["count"] / peak, 1) if peak else 0
        return {
            "summary": summary,
            "today": today_summary,
            "daily": daily,
            "live": live_stats(project_id=self.project.id),
        }
