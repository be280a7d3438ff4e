"""The live page: the project's events as they arrive. The page only says which project and
filters; static/dashboard/live.js opens the stream (ws/events?project=<slug>, signed in by the
session, events.live.consumers) and fills in the events and stats."""

from dashboard.views import ProjectPage
from events.live.stats import live_stats

FILTERS = ("eventName", "userId")


class LivePage(ProjectPage):
    template_name = "dashboard/live.html"
    section = "live"

    def numbers(self) -> dict:
        # the stats as they are now, until the stream's first stats message
        return {"live": live_stats(project_id=self.project.id), "filters": self.range_query(FILTERS)}
