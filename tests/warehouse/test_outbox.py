"""The outbox holds a row per write (warehouse.models.Outbox): an export takes ids from its
oldest rows, a row in part when the batch ends inside it, and never takes an event it did
not read."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from events.models import Event
from tests.warehouse.helpers import assert_exact, mirror_state, spread, store
from warehouse import export
from warehouse.export import mirror_export, outbox_events
from warehouse.models import Outbox


def test_each_write_is_one_row_and_an_export_takes_a_row_in_part(project, no_auto_export):
    store(project.id, spread(30, 2), tag="a")
    store(project.id, spread(20, 2, user_prefix="v"), tag="b")
    assert list(Outbox.objects.filter(project_id=project.id).order_by("id").values_list("events", flat=True)) == [
        30,
        20,
    ]
    assert mirror_export(project_id=project.id, limit=35)[0] == 35
    assert list(Outbox.objects.filter(project_id=project.id).values_list("events", flat=True)) == [15]
    (rest,) = Outbox.objects.filter(project_id=project.id)
    assert len(rest.event_ids) == len(set(rest.event_ids)) == 15
    state = mirror_state(project.id)
    assert_exact(state, stored=50)
    assert state["pending"] == 15 and sum(state["live"].values()) == 35


def test_a_row_the_export_did_not_take_stays_though_its_events_lie_in_the_range_read(
    project, no_auto_export, monkeypatch
):
    """A row committed after the export listed the outbox can hold ids inside the range of
    rows it reads (PostgreSQL hands out ids before commit): its events are read with the
    range and left out, and the row stays for the next export."""
    for tag in ("a", "b", "c"):
        store(project.id, spread(10, 1, user_prefix=tag), tag=tag)
    first, middle, last = Outbox.objects.filter(project_id=project.id).order_by("id")
    take = export._outbox_take

    def not_seeing_the_middle(project_id, limit):
        taken, rest = take(project_id, limit)
        return [row for row in taken if row[0] != middle.id], rest

    monkeypatch.setattr(export, "_outbox_take", not_seeing_the_middle)
    assert mirror_export(project_id=project.id)[0] == 20
    assert list(Outbox.objects.filter(project_id=project.id).values_list("id", flat=True)) == [middle.id]
    monkeypatch.setattr(export, "_outbox_take", take)
    assert mirror_export(project_id=project.id)[0] == 10
    assert_exact(mirror_state(project.id), stored=30)


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_per_event_rows_into_rows_per_thousand(project, other_project, no_auto_export):
    """An outbox of the earlier shape (a row per event) is carried over whole."""
    store(project.id, spread(2500, 3), tag="a")
    store(other_project.id, spread(7, 1), tag="b")
    executor = MigrationExecutor(connection)
    executor.migrate([("warehouse", "0004_mirrorspan")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM warehouse_pending")
        assert cursor.fetchone()[0] == 2507  # the migration back listed every event
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("warehouse"))
    rows = {
        p.id: list(Outbox.objects.filter(project_id=p.id).order_by("id").values_list("events", flat=True))
        for p in (project, other_project)
    }
    assert rows == {project.id: [1000, 1000, 500], other_project.id: [7]}
    for project_id in (project.id, other_project.id):
        listed = sorted(pk for row in Outbox.objects.filter(project_id=project_id) for pk in row.event_ids)
        assert listed == sorted(Event.objects.filter(project_id=project_id).values_list("id", flat=True))
    assert outbox_events(project.id) == 2500
    assert_exact(mirror_state(project.id), stored=2500)
