"""The settings page: the timezone and the API keys, changed by an organization's admins."""

import pytest
from django.test import Client

from accounts.models import ApiKey, Membership
from tests.dashboard.test_pages import member

pytestmark = pytest.mark.django_db


def with_token(client, project, form: dict) -> dict:
    """The form as the page sends it: a key form with the one-time token of a page just shown."""
    if form.get("action") != "create_key":
        return form
    return {**form, "form": client.get(f"/p/{project.slug}/settings").context["form_token"]}


def test_an_admin_creates_a_key_shown_once_and_revokes_it(project, client_for):
    admin = member(project, role=Membership.Role.ADMIN)
    url = f"/p/{project.slug}/settings"
    created = admin.post(
        url, with_token(admin, project, {"action": "create_key", "name": "web site", "scopes": ["ingest", "read"]})
    )
    assert created.status_code == 200
    plaintext = created.context["new_key"]
    assert plaintext in created.content.decode()
    key = ApiKey.objects.get(project=project, name="web site")
    assert sorted(key.scopes) == ["ingest", "read"] and plaintext not in str(vars(key))
    assert client_for(plaintext).get("/api/v1/events/summary").status_code == 200
    assert plaintext not in admin.get(url).content.decode()  # shown once
    revoked = admin.post(url, {"action": "revoke", "key": key.pk})
    assert revoked.status_code == 200 and "revoked" in revoked.context["notice"]
    assert client_for(plaintext).get("/api/v1/events/summary").status_code == 401


def test_an_admin_sets_the_timezone_and_the_pages_follow_it(project):
    admin = member(project, role=Membership.Role.ADMIN)
    url = f"/p/{project.slug}/settings"
    assert admin.post(url, {"action": "timezone", "timezone": "Asia/Kolkata"}).status_code == 200
    project.refresh_from_db()
    assert project.timezone == "Asia/Kolkata"
    assert "Asia/Kolkata" in admin.get(f"/p/{project.slug}/").content.decode()
    bad = admin.post(url, {"action": "timezone", "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and b'role="alert"' in bad.content
    project.refresh_from_db()
    assert project.timezone == "Asia/Kolkata"


@pytest.mark.parametrize(
    "form",
    [
        {"action": "create_key", "name": "", "scopes": ["read"]},
        {"action": "create_key", "name": "x", "scopes": ["everything"]},
        {"action": "create_key", "name": "x" * 201, "scopes": ["read"]},
        {"action": "revoke", "key": "not-a-key"},
        {"action": "revoke", "key": "99999999999999999999999"},
        {"action": "nothing"},
        {"action": "timezone", "timezone": "UTC\x00"},
    ],
)
def test_bad_forms_are_a_400_that_changes_nothing(form, project):
    admin = member(project, role=Membership.Role.ADMIN)
    response = admin.post(f"/p/{project.slug}/settings", with_token(admin, project, form))
    assert response.status_code in (400, 404) and b'role="alert"' in response.content
    assert ApiKey.objects.count() == 0


def test_a_viewer_sees_the_keys_but_cannot_change_them(project, other_project, make_key):
    make_key(project, name="existing")
    viewer = member(project)
    page = viewer.get(f"/p/{project.slug}/settings")
    assert page.status_code == 200 and "existing" in page.content.decode() and b"Create key" not in page.content
    refused = viewer.post(f"/p/{project.slug}/settings", {"action": "create_key", "name": "mine", "scopes": ["read"]})
    assert refused.status_code == 403 and ApiKey.objects.count() == 1
    assert viewer.get(f"/p/{other_project.slug}/settings").status_code == 404
    assert viewer.post(f"/p/{other_project.slug}/settings", {"action": "nothing"}).status_code == 404
    assert Client().post(f"/p/{project.slug}/settings", {"action": "nothing"}).status_code == 302


def test_the_settings_form_needs_the_csrf_token(project):
    admin = member(project, role=Membership.Role.ADMIN)
    admin.handler.enforce_csrf_checks = True
    response = admin.post(f"/p/{project.slug}/settings", {"action": "create_key", "name": "x", "scopes": ["read"]})
    assert response.status_code == 403 and ApiKey.objects.count() == 0


def test_a_key_form_sent_again_makes_no_second_key(project):
    """A reload of the answer that showed a new key posts its form again: refused, 400, and
    the key is not shown again; a form never shown is refused the same way."""
    admin = member(project, role=Membership.Role.ADMIN)
    url = f"/p/{project.slug}/settings"
    form = with_token(admin, project, {"action": "create_key", "name": "web site", "scopes": ["read"]})
    created = admin.post(url, form)
    assert created.status_code == 200 and ApiKey.objects.count() == 1
    again = admin.post(url, form)
    assert again.status_code == 400 and "sent already" in again.context["error"]
    assert created.context["new_key"] not in again.content.decode()
    assert admin.post(url, {**form, "form": "made-up"}).status_code == 400
    assert ApiKey.objects.count() == 1
    assert admin.post(url, {**form, "form": again.context["form_token"]}).status_code == 200  # the page's new form
    assert ApiKey.objects.count() == 2
