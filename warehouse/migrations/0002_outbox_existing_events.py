from django.db import migrations

# Events stored before the mirror existed enter the outbox, so the next export mirrors them
# (until then they are read as the tail).
FORWARD = "INSERT INTO warehouse_pending (event_id, project_id) SELECT id, project_id FROM events_event"


class Migration(migrations.Migration):
    dependencies = [("warehouse", "0001_initial"), ("events", "0004_directwrite")]

    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
