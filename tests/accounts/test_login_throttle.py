"""Sign-in throttling (django-axes): the 5th failed sign-in in a row of one username from one
address locks that pair out with a 429 page, even with the right password then; another
address, or another username, is not locked; a success before the limit resets the count.
The admin's login is covered the same way."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def sign_in(password: str, *, username: str = "ana", address: str = "203.0.113.7", path: str = LOGIN):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


@pytest.fixture
def ana():
    return User.objects.create_user("ana", password="the-right-password", is_staff=True)


@pytest.mark.parametrize("path", [LOGIN, "/admin/login/"])
def test_the_fifth_failure_locks_the_username_at_that_address(ana, path):
    for _ in range(4):
        assert sign_in("wrong", path=path).status_code == 200  # the form again, with its error
    locked = sign_in("wrong", path=path)
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.content
    assert sign_in("the-right-password", path=path).status_code == 429  # locked: even the right one
    assert sign_in("the-right-password", address="198.51.100.2", path=path).status_code == 302  # elsewhere
    User.objects.create_user("bob", password="bobs-password", is_staff=True)
    assert sign_in("bobs-password", username="bob", path=path).status_code == 302


def test_a_success_resets_the_count(ana):
    for _ in range(4):
        sign_in("wrong")
    assert sign_in("the-right-password").status_code == 302
    for _ in range(4):
        assert sign_in("wrong").status_code == 200
    assert sign_in("the-right-password").status_code == 302
