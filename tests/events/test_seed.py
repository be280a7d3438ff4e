from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from events.models import Event

pytestmark = pytest.mark.django_db


def seed(*args) -> str:
    out = StringIO()
    call_command("seed", "--project", "web", "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_seed_writes_the_requested_events_and_is_idempotent(project):
    assert "Stored 3000 new events" in seed("--events", "3000", "--users", "150", "--days", "14", "--seed", "7")
    assert Event.objects.filter(project=project).count() == 3000
    assert "Stored 0 new events (3000 already there)" in seed(
        "--events", "3000", "--users", "150", "--days", "14", "--seed", "7"
    )
    assert Event.objects.count() == 3000


def test_seeded_data_is_realistic(project):
    seed("--events", "5000", "--users", "200", "--days", "30", "--seed", "3")
    events = list(Event.objects.filter(project=project).order_by("timestamp", "id"))
    names = {e.event_name for e in events}
    assert {"signup", "login", "page_view", "add_to_cart", "checkout_start", "purchase"} <= names
    counts = defaultdict(int)
    for e in events:
        counts[e.event_name] += 1
    # a funnel with drop-offs at every step
    assert counts["page_view"] > counts["add_to_cart"] > counts["checkout_start"] > counts["purchase"] > 0
    first = {}
    for e in events:
        first.setdefault(e.user_id, e.event_name)
    assert set(first.values()) == {"signup"}  # everyone's first event is their signup
    purchase = next(e for e in events if e.event_name == "purchase")
    assert isinstance(purchase.properties["amount"], float) and purchase.properties["currency"] == "USD"
    assert all(e.session_id and e.page_url for e in events)
    span = events[-1].timestamp - events[0].timestamp
    assert 20 <= span.days <= 30


def test_seed_refuses_an_unknown_project(db):
    with pytest.raises(CommandError, match="No project"):
        call_command("seed", "--project", "nope", "--no-progress")
