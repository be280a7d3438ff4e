"""A deleted project's mirror goes with it: its catalog rows cascade, its outbox rows are
deleted in the same transaction, its files once the deletion has committed (a crash in
between leaves files no catalog row names, which the sweep deletes).

A signal because a project is deleted by Django itself (the admin, a cascade from its
organization), through no service of ours. The deletion first takes the project's mirror
lock, so it waits for an export or compaction in flight rather than racing it (which could
commit a catalog row for a project being deleted, or write files after they were removed).
"""

import shutil

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver

from accounts.models import Project
from warehouse.export import mirror_lock
from warehouse.models import Outbox


@receiver(pre_delete, sender=Project)
def project_mirror_lock(sender, instance, **kwargs) -> None:
    mirror_lock(instance.pk)


@receiver(post_delete, sender=Project)
def project_mirror_delete(sender, instance, **kwargs) -> None:
    Outbox.objects.filter(project_id=instance.pk).delete()
    directory = settings.ANALYTICS_DIR / str(instance.pk)
    transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
