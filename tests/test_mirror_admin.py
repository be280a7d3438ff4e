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
