from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.keys import hash_key
from accounts.models import ApiKey, Membership
from accounts.services import api_key_create, organization_get_or_create, project_get_or_create

DEMO_ORG, DEMO_PROJECT, DEMO_KEY_NAME = "Demo", "Demo", "demo"
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password-789"  # with --demo-key only: DEBUG's well-known login


class Command(BaseCommand):
    help = "Migrate the database, then create a demo organization, project and API key (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-key",
            help="Install this known plaintext as the demo key (only with DEBUG on), "
            "e.g. sample-api-key-789 so the README's curl examples work locally.",
        )
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`.")

    def handle(self, *args, demo_key=None, no_migrate=False, **options):
        if demo_key and not settings.DEBUG:
            raise CommandError("--demo-key is a well-known secret; it is allowed only with DEBUG on.")
        if not no_migrate:
            call_command(
                "migrate", interactive=False, verbosity=options["verbosity"] - 1 if options["verbosity"] else 0
            )
        org = organization_get_or_create(name=DEMO_ORG)
        project = project_get_or_create(organization=org, name=DEMO_PROJECT)
        self.stdout.write(f"Demo project: {project} (slug {project.slug}, timezone {project.timezone})")

        if demo_key:
            if not ApiKey.objects.filter(key_hash=hash_key(demo_key)).exists():
                api_key_create(
                    project=project, name=DEMO_KEY_NAME, scopes=["ingest", "read", "admin"], plaintext=demo_key
                )
            self._demo_login(org)
            # A key given on the command line is no secret to its caller: repeat it every time.
            self.stdout.write(f"Demo API key (ingest, read, admin): {demo_key}")
            return

        existing = ApiKey.objects.filter(project=project, name=DEMO_KEY_NAME, is_active=True).first()
        if existing:
            self.stdout.write(
                f"Demo API key already exists ({existing.prefix}…); keys are shown only once. "
                "Create another with: python manage.py createapikey --org Demo --project Demo"
            )
            return
        _, plaintext = api_key_create(project=project, name=DEMO_KEY_NAME, scopes=["ingest", "read", "admin"])
        self.stdout.write("Demo API key (ingest, read, admin) — shown once, copy it now:")
        self.stdout.write(plaintext)

    def _demo_login(self, org) -> None:
        """The dashboard's demo login, an admin of the demo organization (DEBUG only, as the
        demo key)."""
        user, created = get_user_model().objects.get_or_create(username=DEMO_USER)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        Membership.objects.get_or_create(user=user, organization=org, defaults={"role": Membership.Role.ADMIN})
        password = DEMO_PASSWORD if created or user.check_password(DEMO_PASSWORD) else "(changed since)"
        self.stdout.write(f"Demo login for the dashboard at /: {DEMO_USER} / {password}")
