"""A project's deletion (by Django itself: the admin, a cascade from its organization) first
takes the project row's exclusive lock (events.store.project_lock_for_delete), before Django
deletes its events, so that no event written concurrently outlives it."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from accounts.models import Project
from events.store import project_lock_for_delete


@receiver(pre_delete, sender=Project)
def project_events_lock(sender, instance, **kwargs) -> None:
    project_lock_for_delete(instance.pk)
