from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.keys import PREFIX_LENGTH, hash_key
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_set_active, api_key_touch
from tests.helpers import assert_error


def database_text() -> str:
    """Every row of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.mark.django_db
def test_only_prefix_and_hash_are_stored(project):
    api_key, plaintext = api_key_create(project=project, name="web", scopes=["ingest"])
    assert plaintext.startswith("ak_") and len(plaintext) >= 40
    assert api_key.prefix == plaintext[:PREFIX_LENGTH]
    assert api_key.key_hash == hash_key(plaintext) != plaintext
    text = database_text()
    assert plaintext[PREFIX_LENGTH:] not in text
    assert api_key.key_hash in text  # the dump did read the key's row


@pytest.mark.django_db
def test_generated_keys_differ(project):
    keys = {api_key_create(project=project, name=f"k{i}", scopes=["read"])[1] for i in range(20)}
    assert len(keys) == 20


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_key_authenticates_from_either_header(project, make_key, header):
    from rest_framework.test import APIClient

    plaintext = make_key(project, scopes=["read"])
    value = plaintext if header == "X-API-Key" else f"Bearer {plaintext}"
    response = APIClient().get("/api/v1/project", headers={header: value})
    assert response.status_code == 200
    assert response.json()["id"] == project.id


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key",
    ["", "ak_not-a-real-key-at-all-000000000000000", "short", "x" * 500, "sample-api-key-789"],
)
def test_unknown_or_malformed_key_is_401(client_for, project, key):
    error = assert_error(client_for(key).get("/api/v1/project"), 401, "unauthorized")
    assert key == "" or key not in error["message"]


@pytest.mark.django_db
def test_wrong_secret_with_a_real_prefix_is_401(project, make_key, client_for):
    plaintext = make_key(project)
    forged = plaintext[:PREFIX_LENGTH] + "A" * (len(plaintext) - PREFIX_LENGTH)
    assert_error(client_for(forged).get("/api/v1/project"), 401, "unauthorized")


@pytest.mark.django_db
def test_revoked_key_is_401_and_reactivated_key_works(project, client_for):
    api_key, plaintext = api_key_create(project=project, name="k", scopes=["read"])
    client = client_for(plaintext)
    api_key_set_active(api_key=api_key, is_active=False)
    error = assert_error(client.get("/api/v1/project"), 401, "unauthorized")
    assert "revoked" in error["message"]
    api_key_set_active(api_key=api_key, is_active=True)
    assert client.get("/api/v1/project").status_code == 200


@pytest.mark.django_db
def test_expired_key_is_401(project, client_for):
    _, plaintext = api_key_create(
        project=project, name="k", scopes=["read"], expires_at=timezone.now() - timedelta(seconds=1)
    )
    error = assert_error(client_for(plaintext).get("/api/v1/project"), 401, "unauthorized")
    assert "expired" in error["message"]


@pytest.mark.django_db
def test_key_not_yet_expired_works(project, client_for):
    _, plaintext = api_key_create(
        project=project, name="k", scopes=["read"], expires_at=timezone.now() + timedelta(hours=1)
    )
    assert client_for(plaintext).get("/api/v1/project").status_code == 200


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute(project, client_for):
    api_key, plaintext = api_key_create(project=project, name="k", scopes=["read"])
    client_for(plaintext).get("/api/v1/project")
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    client_for(plaintext).get("/api/v1/project")
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first

    api_key.refresh_from_db()
    api_key_touch(api_key=api_key, now=first + timedelta(seconds=59))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
    api_key_touch(api_key=api_key, now=first + timedelta(seconds=61))
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first + timedelta(seconds=61)


@pytest.mark.django_db
def test_create_key_over_api_shows_plaintext_once(api, project):
    response = api.post("/api/v1/keys", {"name": "ci", "scopes": ["ingest"], "rateLimit": 50}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["scopes"] == ["ingest"] and body["rateLimit"] == 50 and body["key"].startswith(body["prefix"])
    listed = api.get("/api/v1/keys").json()
    assert all("key" not in item for item in listed["results"])
    assert body["key"] not in str(listed)
    assert ApiKey.objects.get(pk=body["id"]).project == project


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": "x"},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": "read"},
        {"name": "x", "scopes": ["read"], "rateLimit": 0},
        {"name": "", "scopes": ["read"]},
        [],
        "text",
    ],
)
def test_create_key_bad_input_is_400_and_writes_nothing(api, payload):
    before = ApiKey.objects.count()
    error = assert_error(api.post("/api/v1/keys", payload, format="json"), 400, "invalid_input")
    assert error["details"]
    assert ApiKey.objects.count() == before


@pytest.mark.django_db
def test_revoke_over_api(api, project, make_key, client_for):
    victim = make_key(project, scopes=["read"])
    victim_id = ApiKey.objects.get(key_hash=hash_key(victim)).pk
    assert api.delete(f"/api/v1/keys/{victim_id}").status_code == 204
    assert_error(client_for(victim).get("/api/v1/project"), 401)
    assert api.get(f"/api/v1/keys/{victim_id}").json()["isActive"] is False


@pytest.mark.django_db
def test_a_key_gets_its_own_ingest_limit_through_the_api(api, project):
    from accounts.models import ApiKey

    created = api.post(
        "/api/v1/keys", {"name": "web", "scopes": ["ingest"], "ingestRateLimit": 50, "rateLimit": 7}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["ingestRateLimit"], body["rateLimit"]) == (50, 7)
    assert ApiKey.objects.get(pk=body["id"]).ingest_rate_limit == 50
    assert api.get(f"/api/v1/keys/{body['id']}").json()["ingestRateLimit"] == 50
    for bad in (0, -1, 2**31, "many", 1.5):
        refused = api.post("/api/v1/keys", {"name": "x", "scopes": ["ingest"], "ingestRateLimit": bad}, format="json")
        assert refused.status_code == 400 and "ingestRateLimit" in refused.json()["error"]["details"]
    assert ApiKey.objects.filter(name="x").count() == 0
