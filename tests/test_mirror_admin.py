from datetime import UTC, datetime

import pytest

from tests.helpers import store_events
from warehouse.export import mirror_export_all


@pytest.mark.django_db
def test_admin_lists_the_mirror_catalog(project, admin_client):
    store_events(project, [("u1", "a", datetime(2024, 1, 1, 10, tzinfo=UTC))])
    mirror_export_all(project_id=project.id)
    page = admin_client.get("/admin/warehouse/mirrorfile/")
    assert page.status_code == 200
    assert b"2024-01-01" in page.content and f"{project.id}/2024-01-01/".encode() in page.content
    assert admin_client.get("/admin/warehouse/mirrorfile/add/").status_code == 403


@pytest.mark.django_db
def test_admin_lists_the_months_spans(project, admin_client):
    from warehouse.spans import spans_merge

    store_events(project, [("u1", "a", datetime(2024, 1, 1, 10, tzinfo=UTC))])
    mirror_export_all(project_id=project.id)
    spans_merge(project_id=project.id)  # if the export job has not already
    page = admin_client.get("/admin/warehouse/mirrorspan/")
    assert page.status_code == 200 and f"{project.id}/spans/2024-01-01-".encode() in page.content
    assert admin_client.get("/admin/warehouse/mirrorspan/add/").status_code == 403
