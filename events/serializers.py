from rest_framework import serializers


class EventInSerializer(serializers.Serializer):
    """An event as a client sends it (documentation; validation is events.validation)."""

    userId = serializers.CharField(max_length=255)
    eventName = serializers.CharField(max_length=200)
    timestamp = serializers.CharField(required=False, help_text="ISO-8601 (naive = UTC) or epoch milliseconds.")
    properties = serializers.DictField(required=False, allow_null=True)
    sessionId = serializers.CharField(required=False, allow_null=True)
    pageUrl = serializers.CharField(required=False, allow_null=True)
    userAgent = serializers.CharField(required=False, allow_null=True)
    ipAddress = serializers.IPAddressField(required=False, allow_null=True)
    eventId = serializers.CharField(required=False, max_length=128, help_text="Dedup key.")


class RejectedEventSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectedEventSerializer(many=True)


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
