from django.core.management.base import BaseCommand, CommandError

from accounts.services import api_key_create, organization_get_or_create, project_get_or_create
from analytics_platform.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create an API key, creating the organization and project if missing. "
        "The last line of output is the plaintext key (shown once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization name.")
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--scopes", default="ingest,read", help="Comma-separated: ingest,read,admin.")
        parser.add_argument("--timezone", help="IANA time zone of the project (set on new and existing projects).")
        parser.add_argument("--rate-limit", type=int, help="Requests per rate-limit window for this key.")
        parser.add_argument("--name", default="cli", help="A name for the key.")

    def handle(self, *args, **options):
        try:
            org = organization_get_or_create(name=options["org"])
            project = project_get_or_create(
                organization=org, name=options["project"], timezone_name=options["timezone"]
            )
            api_key, plaintext = api_key_create(
                project=project, name=options["name"], scopes=options["scopes"], rate_limit=options["rate_limit"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Created key '{api_key.name}' ({api_key.prefix}…) for {project} "
            f"[{', '.join(api_key.scopes)}], timezone {project.timezone}. Shown once:"
        )
        self.stdout.write(plaintext)
