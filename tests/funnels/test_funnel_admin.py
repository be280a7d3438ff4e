import html
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from funnels.admin import duration
from funnels.models import Funnel

pytestmark = pytest.mark.django_db
ADD = "/admin/funnels/funnel/add/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw-for-tests-only"))
    return client


def _form(project, **fields) -> dict:
    steps = [{"eventName": "page_view"}, {"eventName": "purchase", "timeWindow": 5400}]
    form = {"project": project.pk, "name": "Shop", "steps": json.dumps(steps), "conversion_window": "86400"}
    return {**form, "order": "ordered", **fields}


def test_the_add_form_shows_units_an_example_and_a_wide_window_field(staff):
    page = html.unescape(staff.get(ADD).content.decode())
    assert "Conversion window (seconds)" in page and "1209600 = 14 days" in page
    assert 'name="conversion_window"' in page and "width: 12em" in page and 'value="1209600"' in page
    assert '"eventName": "add_to_cart"' in page  # the example beside the steps
    assert "steps[1]</code> is the second step" in page


def test_a_valid_funnel_is_saved_through_the_api_validation(staff, project):
    response = staff.post(ADD, _form(project))
    assert response.status_code == 302, response.content.decode()[:2000]
    funnel = Funnel.objects.get()
    assert funnel.conversion_window == 86400
    assert funnel.steps[1] == {"eventName": "purchase", "filters": {}, "timeWindow": 5400}
    page = html.unescape(staff.get(f"/admin/funnels/funnel/{funnel.pk}/change/").content.decode())
    assert '[\n  {\n    "eventName": "page_view"' in page  # indented JSON
    assert "steps[1]: <b>purchase</b>, within 5400 s of the previous step (1 h 30 min)" in page
    listing = staff.get("/admin/funnels/funnel/").content.decode()
    assert "86400 s (1 d)" in listing


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"steps": json.dumps([{"eventName": "a"}, {"eventName": ""}])}, "steps[1].eventName: is required"),
        (
            {"steps": json.dumps([{"eventName": "a", "timeWindow": 5}, {"eventName": "b"}])},
            "steps[0].timeWindow: is not",
        ),
        ({"steps": "[{"}, "Enter a valid JSON."),
        ({"conversion_window": "2147483648"}, "less than or equal to 2147483647"),
        ({"conversion_window": "0"}, "greater than or equal to 1"),
    ],
)
def test_invalid_funnels_are_refused_with_a_readable_error(staff, project, fields, message):
    response = staff.post(ADD, _form(project, **fields))
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert Funnel.objects.count() == 0


def test_durations_read_like_a_person_writes_them():
    assert [duration(s) for s in (1209600, 5400, 59, 90061, None)] == ["14 d", "1 h 30 min", "59 s", "1 d 1 h", ""]
