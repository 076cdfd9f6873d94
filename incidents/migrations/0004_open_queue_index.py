"""The open-incident queue's own index (every dashboard snapshot reads it).

Built CONCURRENTLY: on a running control room's incidents table a plain CREATE INDEX
would hold up every partner event's insert until it finished.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("incidents", "0003_workflow"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="incident",
            index=models.Index(
                condition=models.Q(("status__in", ("new", "acknowledged", "dispatched"))),
                fields=["center", "priority", "received_at"],
                name="incident_open_queue",
            ),
        ),
    ]
