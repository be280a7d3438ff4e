from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from accounts.models import ApiKey, Organization, Project


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.django_db
def test_setup_is_idempotent_and_prints_the_key_once(client_for):
    first = run("setup", "--no-migrate")
    plaintext = first[-1]
    assert client_for(plaintext).get("/api/v1/project").json()["slug"] == "demo"
    second = run("setup", "--no-migrate")
    assert plaintext not in "\n".join(second)
    assert "already exists" in second[-1]
    assert (Organization.objects.count(), Project.objects.count(), ApiKey.objects.count()) == (1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_setup_migrates():
    lines = run("setup")
    assert ApiKey.objects.count() == 1 and lines[-1].startswith("ak_")


@pytest.mark.django_db
def test_demo_key_needs_debug():
    with pytest.raises(CommandError, match="DEBUG"):
        run("setup", "--no-migrate", "--demo-key", "sample-api-key-789")
    assert ApiKey.objects.count() == 0


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_demo_key_is_installed_once_and_works(client_for):
    for _ in range(2):
        assert run("setup", "--no-migrate", "--demo-key", "sample-api-key-789")[-1].endswith("sample-api-key-789")
    assert ApiKey.objects.count() == 1
    client = client_for("sample-api-key-789")
    assert client.get("/api/v1/project").status_code == 200
    assert client.get("/api/v1/keys").status_code == 200


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_the_demo_setup_prints_a_dashboard_login_that_opens_the_demo_project():
    lines = run("setup", "--no-migrate", "--demo-key", "sample-api-key-789")
    assert "Demo login for the dashboard at /: demo / demo-password-789" in lines
    assert run("setup", "--no-migrate", "--demo-key", "sample-api-key-789") == lines  # idempotent
    browser = Client()
    signed_in = browser.post("/accounts/login/", {"username": "demo", "password": "demo-password-789"}, follow=True)
    assert signed_in.redirect_chain[-1] == ("/p/demo/", 302)


@pytest.mark.django_db
def test_createapikey_last_line_is_the_key(client_for):
    lines = run(
        "createapikey",
        "--org",
        "Initech",
        "--project",
        "TPS",
        "--scopes",
        "read,admin",
        "--timezone",
        "Asia/Kolkata",
        "--rate-limit",
        "500",
        "--name",
        "ops",
    )
    plaintext = lines[-1]
    client = client_for(plaintext)
    assert client.get("/api/v1/project").json() == {
        "id": Project.objects.get().id,
        "name": "TPS",
        "slug": "tps",
        "timezone": "Asia/Kolkata",
        "organization": "Initech",
    }
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.scopes, api_key.rate_limit) == ("ops", ["read", "admin"], 500)
    assert client.get("/api/v1/project")["X-RateLimit-Limit"] == "500"


@pytest.mark.django_db
def test_createapikey_reuses_org_and_project_and_updates_timezone():
    run("createapikey", "--org", "Initech", "--project", "TPS")
    run("createapikey", "--org", "Initech", "--project", "TPS", "--timezone", "America/New_York")
    assert Organization.objects.count() == 1 and Project.objects.count() == 1 and ApiKey.objects.count() == 2
    project = Project.objects.get()
    assert project.timezone == "America/New_York"
    assert sorted(ApiKey.objects.values_list("scopes", flat=True)) == [["ingest", "read"], ["ingest", "read"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,message",
    [
        (["--scopes", "read,root"], "Scopes"),
        (["--timezone", "Mars/Base"], "IANA"),
        (["--rate-limit", "0"], "rate limit"),
    ],
)
def test_createapikey_refuses_bad_input_and_writes_no_key(args, message):
    with pytest.raises(CommandError, match=message):
        run("createapikey", "--org", "Initech", "--project", "TPS", *args)
    assert ApiKey.objects.count() == 0
