"""Deleting a project deletes its mirror: catalog rows (live and retired), outbox rows and
its files directory, and nothing of another project's."""

from django.conf import settings

from tests.warehouse.helpers import DAY_ONE, assert_exact, mirror_state, spread, store
from warehouse.compact import partition_compact
from warehouse.export import mirror_export
from warehouse.models import MirrorFile, Outbox


def test_deleting_a_project_deletes_its_catalog_outbox_and_files(
    project, other_project, no_auto_export, django_capture_on_commit_callbacks
):
    for each in (project, other_project):
        store(each.id, spread(40, 2), tag="a")
        mirror_export(project_id=each.id, limit=10)
        mirror_export(project_id=each.id, limit=10)
        partition_compact(project_id=each.id, day=DAY_ONE.date())  # a retired file too
    before = mirror_state(project.id)
    assert before["pending"] == 20 and before["live"] and before["retired"]
    other_before = mirror_state(other_project.id)
    directory = settings.ANALYTICS_DIR / str(project.id)
    assert directory.is_dir()

    project_id = project.id
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()

    assert MirrorFile.objects.filter(project_id=project_id).count() == 0
    assert not Outbox.objects.filter(project_id=project_id).exists()
    assert not directory.exists()
    assert mirror_state(other_project.id) == other_before
    assert_exact(other_before, stored=40)
