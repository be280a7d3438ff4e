"""A session cookie no session could have (a NUL, the wrong characters) is no session: the
page sends the visitor to the login page, and the stream refuses the socket, instead of the
database refusing the lookup (PostgreSQL takes no NUL in text: a 500 before)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("cookie", ["\x00" + "a" * 31, "a" * 31 + "\x00", "ab\x00cdefghijklmnopqrstuvwxyz01234"])
def test_a_session_cookie_with_a_nul_is_no_session(client, project, cookie):
    client.cookies["sessionid"] = cookie
    response = client.get(f"/p/{project.slug}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
