from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import Project
from events.models import Event
from events.seeding import chunked, generate_rows, tables_analyze
from events.services import events_persist
from warehouse.jobs import export_mirror

CHUNK = 5000


class Command(BaseCommand):
    help = "Store realistic sample events (sessions, a purchase funnel, signups and logins) in a project."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo", help="Project slug (default: the demo project).")
        parser.add_argument("--events", type=int, default=100_000)
        parser.add_argument("--users", type=int, default=None, help="Default: one per 20 events.")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with slug {options['project']!r} (run `manage.py setup` for the demo).")
        total, days = options["events"], options["days"]
        if total < 1 or days < 1:
            raise CommandError("--events and --days must be positive.")
        users = options["users"] or max(total // 20, 1)
        rows = generate_rows(events=total, users=users, days=days, seed=options["seed"])
        stored = 0
        with tqdm(total=total, unit="ev", disable=options["no_progress"], desc=f"seeding {project.slug}") as bar:
            for chunk in chunked(rows, CHUNK):
                stored += events_persist(project_id=project.id, rows=chunk, publish=False).stored
                bar.update(len(chunk))
        tables_analyze(tables=[Event])  # the planner sees the new rows now
        export_mirror(project.id)  # and analytics read them from the mirror's files, not the tail
        self.stdout.write(
            f"Stored {stored} new events ({total - stored} already there) for {users} users in {project}."
        )
