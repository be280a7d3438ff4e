import pytest
from django.test import Client

from tests.helpers import assert_error


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/nope", "/api/v1/nope", "/api/v1/keys/1/more", "/api/", "/api/v2/events"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_paths_are_404_in_the_error_shape(api, path, method):
    assert_error(getattr(api, method)(path), 404, "not_found")


@pytest.mark.django_db
def test_unknown_non_api_path_is_404_in_the_error_shape():
    assert_error(Client().get("/no-such-page"), 404, "not_found")


@pytest.mark.django_db
def test_wrong_method_is_405_in_the_error_shape(api):
    assert_error(api.put("/api/v1/project", {}, format="json"), 405, "method_not_allowed")
    assert_error(Client().post("/health"), 405, "method_not_allowed")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [b"{", b"[1,", b"\xff\xfe", b'{"name": NaN', b"nul\x00l", b'{"a":' * 2000 + b"1" + b"}" * 2000]
)
def test_malformed_json_is_400_in_the_error_shape(api, body):
    response = api.generic("POST", "/api/v1/keys", body, content_type="application/json")
    assert_error(response, 400)


@pytest.mark.django_db
def test_non_json_body_is_415(api):
    response = api.generic("POST", "/api/v1/keys", b"name=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_json_is_answered_whatever_the_accept_header(api):
    response = api.get("/api/v1/project", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
