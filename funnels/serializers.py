"""Funnel definitions as the API takes them (API.md, "Funnels"). Errors name the step, counted
from 0 like ingestion's `rejected[].index`, and the field: `steps[1].timeWindow` is the
second step's, `steps[0].filters.plan` the first step's filter on `plan`.

Everything a definition holds ends up in SQL parameters and a JSON column, so the bounds are
theirs: text without NUL or lone surrogates (PostgreSQL stores neither), whole numbers that
fit a BIGINT, windows that fit the INTEGER column, and few enough filters that a funnel's
statement stays well under the databases' parameter limits.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from events.validation import storable_text_problem
from funnels.models import DEFAULT_CONVERSION_WINDOW, Funnel

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "exists")
MIN_STEPS, MAX_STEPS = 2, 20
MAX_FILTERS, MAX_IN_VALUES, MAX_NAME = 10, 100, 200
MAX_WINDOW = 2**31 - 1  # seconds (~68 years): what conversion_window, a PositiveIntegerField, holds
MAX_WHOLE = 2**63 - 1
WINDOW_RULE = f"must be a positive whole number of seconds, at most {MAX_WINDOW}"


def _is_window(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WINDOW


MAX_VALUE_DEPTH = 32  # lists and objects inside a filter value


def _value_problem(value) -> str | None:
    """What makes a filter value (any JSON) unusable: bad text, an integer past BIGINT, or
    nesting deeper than MAX_VALUE_DEPTH (walked without recursion: a value nested a thousand
    deep parses, and must be a 400, not a RecursionError)."""
    pending = [(value, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if problem := storable_text_problem(value):
                return problem
        elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_WHOLE <= value <= MAX_WHOLE:
            return f"whole numbers must be within ±{MAX_WHOLE} (write larger ones as decimals)"
        elif isinstance(value, list | dict):
            if depth == MAX_VALUE_DEPTH:
                return f"values may be nested at most {MAX_VALUE_DEPTH} lists or objects deep"
            items = [part for item in value.items() for part in item] if isinstance(value, dict) else value
            pending += [(item, depth + 1) for item in reversed(items)]
    return None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _filter_errors(prop: str, spec) -> list[str]:
    if not isinstance(spec, dict):
        return []  # a plain value: equality
    if set(spec) - {"op", "value"} or "op" not in spec:
        return ['must be a value, or {"op": ..., "value": ...}']
    op, value = spec["op"], spec.get("value")
    if not isinstance(op, str) or op not in OPS:
        return [f"op must be one of {', '.join(OPS)}"]
    if op in ("gt", "gte", "lt", "lte") and not _is_number(value):
        return [f"{op} compares numbers: value must be a number"]
    if op == "contains" and not isinstance(value, str):
        return ["contains takes a string value"]
    if op == "in" and not isinstance(value, list):
        return ["in takes a list of values"]
    if op == "in" and len(value) > MAX_IN_VALUES:
        return [f"in takes at most {MAX_IN_VALUES} values"]
    if op == "exists" and not isinstance(value, bool):
        return ["exists takes true or false"]
    return []


def validate_steps(steps) -> list[dict]:
    if not isinstance(steps, list) or not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise serializers.ValidationError(f"must be a list of {MIN_STEPS} to {MAX_STEPS} steps")
    errors: dict[str, list[str]] = {}
    clean = []
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            errors[where] = ["must be an object with eventName"]
            continue
        unknown = set(step) - {"eventName", "filters", "timeWindow"}
        if unknown:
            errors[where] = [f"unknown field(s): {', '.join(sorted(unknown))}"]
        name = step.get("eventName")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            errors[f"{where}.eventName"] = [f"is required: a string of 1 to {MAX_NAME} characters"]
        elif problem := storable_text_problem(name):
            errors[f"{where}.eventName"] = [problem]
        filters = step.get("filters") or {}
        if not isinstance(filters, dict):
            errors[f"{where}.filters"] = ["must be an object of property → value or {op, value}"]
            filters = {}
        elif len(filters) > MAX_FILTERS:
            errors[f"{where}.filters"] = [f"at most {MAX_FILTERS} properties per step"]
            filters = {}
        for prop, spec in filters.items():
            if not 1 <= len(prop) <= MAX_NAME or storable_text_problem(prop):
                errors[f"{where}.filters"] = [
                    f"property names are 1 to {MAX_NAME} characters, without NUL or lone surrogates"
                ]
                continue
            at = f"{where}.filters.{prop}"
            problem = _value_problem(spec)
            for message in [problem] if problem else _filter_errors(prop, spec):
                errors.setdefault(at, []).append(message)
        window = step.get("timeWindow")
        if window is not None:
            if index == 0:
                errors[f"{where}.timeWindow"] = ["is not allowed on the first step"]
            elif not _is_window(window):
                errors[f"{where}.timeWindow"] = [WINDOW_RULE]
        clean.append({"eventName": name, "filters": filters, "timeWindow": window})
    if errors:
        raise serializers.ValidationError(errors)
    return clean


# A filter is a value (JSON equality) or {"op": one of OPS, "value": ...}; documented with
# scalar values and lists of them (the common cases), no "any value" schema: nested inside
# the steps, those make schema-driven generators recurse past what Python 3.11 parses.
SCALARS = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
FILTER_SCHEMA = {
    "description": f'A value (JSON equality), or {{"op": {"|".join(OPS)}, "value": ...}}',
    "oneOf": [
        *SCALARS,
        {
            "type": "object",
            "properties": {
                "op": {"type": "string", "enum": list(OPS)},
                "value": {"oneOf": [*SCALARS, {"type": "array", "items": {"oneOf": SCALARS}}]},
            },
            "required": ["op"],
            "additionalProperties": False,
        },
    ],
}
STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "eventName": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        "filters": {
            "type": "object",
            "maxProperties": MAX_FILTERS,
            "additionalProperties": FILTER_SCHEMA,
            "description": "property → value or {op, value}",
        },
        "timeWindow": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_WINDOW,
            "nullable": True,
            "description": "Most seconds since the previous step (not on the first step).",
        },
    },
    "required": ["eventName"],
    "additionalProperties": False,
}


@extend_schema_field({"type": "array", "items": STEP_SCHEMA, "minItems": MIN_STEPS, "maxItems": MAX_STEPS})
class StepsField(serializers.JSONField):
    """The steps, validated by validate_steps (its schema, for the documentation)."""


class FunnelSerializer(serializers.ModelSerializer):
    steps = StepsField()
    conversionWindow = serializers.IntegerField(
        source="conversion_window",
        min_value=1,
        max_value=MAX_WINDOW,
        default=DEFAULT_CONVERSION_WINDOW,
        help_text="seconds (default 1209600 = 14 days)",
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
            if not _is_window(data["conversionWindow"]):
                raise serializers.ValidationError({"conversionWindow": [WINDOW_RULE]})
        return super().to_internal_value(data)
