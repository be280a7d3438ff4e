from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "ISO-8601; without an offset it is UTC"},
            {"type": "integer", "minimum": 0, "description": "epoch milliseconds"},
        ],
        "description": "Default: the time received. More than 1 h in the future, or before 1970: rejected.",
    }
)
class TimestampField(serializers.Field):
    """ISO-8601 text or epoch milliseconds (documentation only, like the serializer)."""


class EventInSerializer(serializers.Serializer):
    """An event as a client sends it: the schema of POST /events (documentation; the
    validation is events.validation, which these bounds follow)."""

    userId = serializers.CharField(min_length=1, max_length=255)
    eventName = serializers.CharField(min_length=1, max_length=200)
    timestamp = TimestampField(required=False, allow_null=True)
    properties = serializers.DictField(required=False, allow_null=True, help_text="At most 32 KB as compact JSON.")
    sessionId = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    pageUrl = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=8192)
    userAgent = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=2048)
    ipAddress = serializers.IPAddressField(required=False, allow_null=True, help_text="Default: the client's address.")
    eventId = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=128,
        help_text="Dedup key (default: a hash of the event).",
    )


class EventsInSerializer(serializers.Serializer):
    """The body of POST /events: one event object, or a non-empty array of up to
    EVENT_BATCH_SIZE of them (documentation only: events.payload reads the body)."""


class EventsInSchema(OpenApiSerializerExtension):
    target_class = EventsInSerializer

    def get_name(self, auto_schema, direction):
        return "EventsIn"

    def map_serializer(self, auto_schema, direction):
        event = auto_schema.resolve_serializer(EventInSerializer, direction).ref
        batch = {"type": "array", "items": event, "minItems": 1, "maxItems": settings.EVENT_BATCH_SIZE}
        sent = {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": batch,
                "sentAt": {
                    "oneOf": [
                        {"type": "string", "description": "ISO-8601; without an offset it is UTC"},
                        {"type": "integer", "minimum": 0, "description": "epoch milliseconds"},
                    ],
                    "description": "When the client sent the batch, by its own clock: each event's timestamp is "
                    "corrected by the clock's skew, timestamp + (received - sentAt).",
                },
            },
        }
        return {
            "oneOf": [event, batch, sent],
            "description": "One event object, an array of up to EVENT_BATCH_SIZE, or {batch, sentAt}.",
        }


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectedEventSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class IngestErrorSerializer(serializers.Serializer):
    """A 400 from POST /events: the error, plus the ingest body when the events could be
    read and every one was rejected (code all_events_rejected)."""

    error = ErrorDetailSerializer()
    accepted = serializers.IntegerField(required=False)
    duplicates = serializers.IntegerField(required=False)
    rejected = RejectedEventSerializer(many=True, required=False)


class TopEventSerializer(serializers.Serializer):
    eventName = serializers.CharField()
    count = serializers.IntegerField()
    uniqueUsers = serializers.IntegerField()


class EventSummarySerializer(serializers.Serializer):
    totalEvents = serializers.IntegerField()
    uniqueUsers = serializers.IntegerField()
    firstEventAt = serializers.DateTimeField(allow_null=True)
    lastEventAt = serializers.DateTimeField(allow_null=True)
    topEvents = TopEventSerializer(many=True)
