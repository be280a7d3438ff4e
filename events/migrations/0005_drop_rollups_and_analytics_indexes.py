from django.db import migrations

# Analytics moved to the column store (warehouse/): the daily rollups and the indexes that
# only analytics scans used go; the journey's (project, user_id, timestamp) index stays.


class Migration(migrations.Migration):
    dependencies = [("events", "0004_directwrite")]

    operations = [
        migrations.RemoveIndex(model_name="event", name="event_project_time"),
        migrations.RemoveIndex(model_name="event", name="event_project_name_time"),
        migrations.RemoveIndex(model_name="event", name="event_project_session_time"),
        migrations.DeleteModel(name="UserDay"),
        migrations.DeleteModel(name="UserDayEvent"),
    ]
