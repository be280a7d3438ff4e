"""Funnels in the admin: the same validation as the API (funnels.serializers.validate_steps),
with the steps as indented JSON and an example beside them, windows in seconds with the
unit and a readable duration shown, and errors as one line per step field."""

import json

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join
from rest_framework.exceptions import ValidationError as ApiValidationError

from funnels.models import DEFAULT_CONVERSION_WINDOW, Funnel
from funnels.serializers import MAX_WINDOW, validate_steps

STEPS_EXAMPLE = """[
  {"eventName": "page_view"},
  {"eventName": "add_to_cart", "filters": {"price": {"op": "gte", "value": 10}}},
  {"eventName": "purchase", "timeWindow": 3600}
]"""
UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def duration(seconds: int | None) -> str:
    """`seconds` as a person reads it: 1209600 → "14 d", 5400 → "1 h 30 min"."""
    if not seconds:
        return ""
    parts = []
    for unit, size in UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])


STEP_KEYS = ("eventName", "filters", "timeWindow")


def _in_reading_order(step):
    """A step's keys as they are written (PostgreSQL's jsonb hands them back reordered)."""
    if not isinstance(step, dict):
        return step
    return {**{key: step[key] for key in STEP_KEYS if key in step}, **step}


class StepsField(forms.JSONField):
    """Steps shown indented, one key per line, so a funnel reads (and diffs) as a list."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        if isinstance(value, list):
            value = [_in_reading_order(step) for step in value]
        try:
            return json.dumps(value, indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            return super().prepare_value(value)


def _error_lines(detail) -> list[str]:
    if isinstance(detail, dict):  # {"steps[1].eventName": ["is required ..."], ...}
        return [f"{path}: {message}" for path, messages in detail.items() for message in messages]
    return [str(message) for message in (detail if isinstance(detail, list) else [detail])]


class FunnelForm(forms.ModelForm):
    steps = StepsField(
        widget=forms.Textarea(attrs={"rows": 16, "cols": 90, "style": "font-family: monospace"}),
        help_text=format_html(
            "A JSON list of 2 to 20 steps, in order. Each step: <code>eventName</code>; optional "
            '<code>filters</code> (property → value, or <code>{{"op": eq|neq|gt|gte|lt|lte|contains|in|exists, '
            '"value": ...}}</code>); optional <code>timeWindow</code>, the most seconds allowed since the '
            "previous step (not on the first). Errors name steps from 0, as in the API: <code>steps[1]</code> "
            "is the second step. Example:<pre>{}</pre>",
            STEPS_EXAMPLE,
        ),
    )
    conversion_window = forms.IntegerField(
        label="Conversion window (seconds)",
        min_value=1,
        max_value=MAX_WINDOW,
        initial=DEFAULT_CONVERSION_WINDOW,
        widget=forms.NumberInput(attrs={"style": "width: 12em"}),
        help_text="How long after a user's first step the later steps still count, in seconds: "
        "86400 = 1 day, 604800 = 7 days, 1209600 = 14 days (the default).",
    )

    class Meta:
        model = Funnel
        fields = ["project", "name", "steps", "conversion_window", "order"]

    def clean_steps(self):
        try:
            return validate_steps(self.cleaned_data["steps"])
        except ApiValidationError as exc:
            raise forms.ValidationError(_error_lines(exc.detail)) from None


def _describe(index: int, step: dict) -> tuple:
    filters = step.get("filters") or {}
    parts = []
    for prop, spec in filters.items():
        if isinstance(spec, dict):
            parts.append(f"{prop} {spec.get('op')} {json.dumps(spec.get('value'), ensure_ascii=False)}")
        else:
            parts.append(f"{prop} = {json.dumps(spec, ensure_ascii=False)}")
    where = f" where {', '.join(parts)}" if parts else ""
    window = step.get("timeWindow")
    within = f", within {window} s of the previous step ({duration(window)})" if window else ""
    return index, step.get("eventName", "?"), where, within


@admin.register(Funnel)
class FunnelAdmin(admin.ModelAdmin):
    form = FunnelForm
    list_display = ["name", "project", "step_summary", "window", "order", "updated_at"]
    list_filter = ["project", "order"]
    search_fields = ["name", "project__name"]
    readonly_fields = ["readable_steps", "created_at", "updated_at"]
    fields = ["project", "name", "steps", "readable_steps", "conversion_window", "order", "created_at", "updated_at"]

    @admin.display(description="steps")
    def step_summary(self, obj):
        return " → ".join(step.get("eventName", "?") for step in obj.steps or [])

    @admin.display(description="conversion window", ordering="conversion_window")
    def window(self, obj):
        return format_html("{} s ({})", obj.conversion_window, duration(obj.conversion_window))

    @admin.display(description="steps, readable")
    def readable_steps(self, obj):
        return format_html_join(
            "", "<div>steps[{}]: <b>{}</b>{}{}</div>", (_describe(i, s) for i, s in enumerate(obj.steps or []))
        )
