from django.core.management.base import BaseCommand, CommandError

from accounts.models import Project
from warehouse.rebuild import mirror_rebuild


class Command(BaseCommand):
    help = "Rebuilds the Parquet mirror of the events from the database (all projects, or --project)."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="only this project id")

    def handle(self, *args, **options):
        projects = Project.objects.order_by("id")
        if options["project"] is not None:
            projects = projects.filter(pk=options["project"])
            if not projects.exists():
                raise CommandError(f"No project with id {options['project']}.")
        for project in projects:
            events = mirror_rebuild(project_id=project.id)
            self.stdout.write(f"{project}: {events} events mirrored")
