from django.core.management.base import BaseCommand, CommandError

from accounts.models import Project
from events.models import UserDay, UserDayEvent
from events.rollups import rollups_rebuild
from events.seeding import tables_analyze


class Command(BaseCommand):
    help = "Recompute the daily rollups from the events (all projects, or one), in each project's timezone."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Project slug (default: every project).")
        parser.add_argument("--stale-only", action="store_true", help="Only projects whose rollups are not valid.")

    def handle(self, *args, project=None, stale_only=False, **options):
        projects = Project.objects.all()
        if project:
            projects = projects.filter(slug=project)
            if not projects.exists():
                raise CommandError(f"No project with slug {project!r}.")
        rebuilt = False
        for item in projects:
            if stale_only and item.rollup_timezone == item.timezone:
                continue
            rollups_rebuild(project_id=item.id)
            rebuilt = True
            self.stdout.write(f"Rebuilt the rollups of {item} in {item.timezone}.")
        if rebuilt:
            tables_analyze(tables=[UserDay, UserDayEvent])  # rows replaced wholesale: fresh statistics
