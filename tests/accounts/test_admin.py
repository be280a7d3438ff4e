import re

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django_rq.models import Dashboard

from accounts.models import ApiKey
from tests.accounts.test_keys import database_text


@pytest.fixture
def staff(db) -> Client:
    user = User.objects.create_superuser("boss", "boss@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def _create_key_in_admin(staff, project, **fields):
    form = {
        "project": project.pk,
        "name": "from admin",
        "scopes": ["read"],
        "rate_limit": "",
        "expires_at": "",
        "is_active": "on",
        **fields,
    }
    return staff.post("/admin/accounts/apikey/add/", form)


def test_admin_creates_a_key_shows_it_once_and_it_authenticates(staff, project, client_for):
    response = _create_key_in_admin(staff, project, scopes=["read", "admin"], rate_limit="7")
    assert response.status_code == 200
    html = response.content.decode()
    plaintext = re.search(r'id="api-key-plaintext"[^>]*value="([^"]+)"', html).group(1)
    assert "shown only this once" in html and "Copy" in html

    api_key = ApiKey.objects.get(name="from admin")
    assert api_key.scopes == ["read", "admin"] and api_key.rate_limit == 7 and api_key.project == project
    assert plaintext.startswith(api_key.prefix)
    assert plaintext[len(api_key.prefix) :] not in database_text()

    client = client_for(plaintext)
    assert client.get("/api/v1/project").status_code == 200
    assert client.get("/api/v1/keys").status_code == 200
    change_page = staff.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert plaintext not in change_page and api_key.prefix in change_page


def test_admin_rejects_a_key_without_scopes(staff, project):
    response = _create_key_in_admin(staff, project, scopes=[])
    assert response.status_code == 200 and b"errorlist" in response.content
    assert not ApiKey.objects.filter(name="from admin").exists()


def test_admin_list_shows_keys_and_revoke_activate_actions_work(staff, project, make_key, client_for):
    plaintext = make_key(project, scopes=["read"], name="listed")
    api_key = ApiKey.objects.get(name="listed")
    listing = staff.get("/admin/accounts/apikey/?q=listed").content.decode()
    assert api_key.prefix in listing and "Acme / Web" in listing

    staff.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert not api_key.is_active
    assert client_for(plaintext).get("/api/v1/project").status_code == 401

    staff.post("/admin/accounts/apikey/", {"action": "activate", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.is_active
    assert client_for(plaintext).get("/api/v1/project").status_code == 200


def test_project_admin_shows_its_keys_inline(staff, project, make_key):
    make_key(project, name="inline-key")
    page = staff.get(f"/admin/accounts/project/{project.pk}/change/").content.decode()
    assert "inline-key" in page


def test_project_admin_rejects_an_unknown_timezone(staff, project):
    form = {
        "organization": project.organization_id,
        "name": "Web",
        "slug": "web",
        "timezone": "Mars/Olympus",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
    }
    response = staff.post(f"/admin/accounts/project/{project.pk}/change/", form)
    assert response.status_code == 200 and b"IANA" in response.content
    project.refresh_from_db()
    assert project.timezone == "UTC"


def test_admin_needs_staff(db):
    response = Client().get("/admin/accounts/apikey/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rq_dashboard_is_linked_from_the_admin_when_redis_is_configured(staff):
    index = staff.get("/admin/").content.decode()
    if settings.REDIS_URL:
        assert admin.site.is_registered(Dashboard)
        assert "/admin/django_rq/dashboard/" in index
        assert staff.get("/admin/django_rq/dashboard/").status_code == 200
        assert Client().get("/admin/django_rq/dashboard/").status_code == 302
    else:
        # Embedded mode runs jobs inline: there is no queue to show.
        assert not admin.site.is_registered(Dashboard)
        assert "django_rq" not in index
