"""Funnel definitions as the API takes them (API.md, "Funnels"). Errors name the step and
field, e.g. `steps[2].timeWindow` or `steps[1].filters.plan.op`."""

from rest_framework import serializers

from funnels.models import DEFAULT_CONVERSION_WINDOW, Funnel

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "exists")
MIN_STEPS, MAX_STEPS = 2, 20


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _filter_errors(prop: str, spec) -> list[str]:
    if not isinstance(spec, dict):
        return []  # a plain value: equality
    if set(spec) - {"op", "value"} or "op" not in spec:
        return ['must be a value, or {"op": ..., "value": ...}']
    op, value = spec["op"], spec.get("value")
    if op not in OPS:
        return [f"op must be one of {', '.join(OPS)}"]
    if op in ("gt", "gte", "lt", "lte") and not _is_number(value):
        return [f"{op} compares numbers: value must be a number"]
    if op == "contains" and not isinstance(value, str):
        return ["contains takes a string value"]
    if op == "in" and not isinstance(value, list):
        return ["in takes a list of values"]
    if op == "exists" and not isinstance(value, bool):
        return ["exists takes true or false"]
    return []


def validate_steps(steps) -> list[dict]:
    if not isinstance(steps, list) or not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise serializers.ValidationError(f"must be a list of {MIN_STEPS} to {MAX_STEPS} steps")
    errors: dict[str, list[str]] = {}
    clean = []
    for number, step in enumerate(steps, start=1):
        where = f"steps[{number}]"
        if not isinstance(step, dict):
            errors[where] = ["must be an object with eventName"]
            continue
        unknown = set(step) - {"eventName", "filters", "timeWindow"}
        if unknown:
            errors[where] = [f"unknown field(s): {', '.join(sorted(unknown))}"]
        name = step.get("eventName")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            errors[f"{where}.eventName"] = ["is required: a string of 1 to 200 characters"]
        filters = step.get("filters") or {}
        if not isinstance(filters, dict):
            errors[f"{where}.filters"] = ["must be an object of property → value or {op, value}"]
            filters = {}
        for prop, spec in filters.items():
            for message in _filter_errors(prop, spec):
                errors.setdefault(f"{where}.filters.{prop}", []).append(message)
        window = step.get("timeWindow")
        if window is not None:
            if number == 1:
                errors[f"{where}.timeWindow"] = ["is not allowed on the first step"]
            elif not isinstance(window, int) or isinstance(window, bool) or window < 1:
                errors[f"{where}.timeWindow"] = ["must be a positive whole number of seconds"]
        clean.append({"eventName": name, "filters": filters, "timeWindow": window})
    if errors:
        raise serializers.ValidationError(errors)
    return clean


class FunnelSerializer(serializers.ModelSerializer):
    steps = serializers.JSONField()
    conversionWindow = serializers.IntegerField(
        source="conversion_window", min_value=1, default=DEFAULT_CONVERSION_WINDOW, help_text="seconds"
    )
    order = serializers.ChoiceField(choices=Funnel.Order.choices, default=Funnel.Order.ORDERED)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = Funnel
        fields = ["id", "name", "steps", "conversionWindow", "order", "createdAt", "updatedAt"]

    def validate_steps(self, steps):
        return validate_steps(steps)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "conversionWindow" in data:
            value = data["conversionWindow"]
            if isinstance(value, bool) or not isinstance(value, int):
                raise serializers.ValidationError({"conversionWindow": ["must be a positive whole number of seconds"]})
        return super().to_internal_value(data)
