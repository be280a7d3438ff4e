"""A deleted project's mirror goes with it: its outbox rows at once (its catalog rows
cascade), its files once the deletion has committed."""

import shutil

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from accounts.models import Project
from warehouse.models import Pending


@receiver(post_delete, sender=Project)
def project_mirror_delete(sender, instance, **kwargs) -> None:
    Pending.objects.filter(project_id=instance.pk).delete()
    directory = settings.ANALYTICS_DIR / str(instance.pk)
    transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
