from django.db import models

from accounts.models import Project

DEFAULT_CONVERSION_WINDOW = 14 * 24 * 3600


class Funnel(models.Model):
    """A saved funnel. `steps` is the validated list of API step objects:
    {"eventName", "filters": {property: value | {"op", "value"}}, "timeWindow": seconds}."""

    class Order(models.TextChoices):
        ORDERED = "ordered"
        STRICT = "strict"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="funnels")
    name = models.CharField(max_length=200)
    steps = models.JSONField()
    conversion_window = models.PositiveIntegerField(default=DEFAULT_CONVERSION_WINDOW)
    order = models.CharField(max_length=16, choices=Order.choices, default=Order.ORDERED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
