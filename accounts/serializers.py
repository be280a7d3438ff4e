from rest_framework import serializers

from accounts.models import ApiKey, Project, Scope
from accounts.services import MAX_RATE_LIMIT


class ProjectSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.name")

    class Meta:
        model = Project
        fields = ["id", "name", "slug", "timezone", "organization"]


class ApiKeySerializer(serializers.ModelSerializer):
    rateLimit = serializers.IntegerField(source="rate_limit", read_only=True, allow_null=True)
    ingestRateLimit = serializers.IntegerField(source="ingest_rate_limit", read_only=True, allow_null=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    expiresAt = serializers.DateTimeField(source="expires_at", read_only=True, allow_null=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "rateLimit",
            "ingestRateLimit",
            "isActive",
            "expiresAt",
            "lastUsedAt",
            "createdAt",
        ]


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), min_length=1)
    rateLimit = serializers.IntegerField(
        min_value=1, max_value=MAX_RATE_LIMIT, required=False, allow_null=True, help_text="reads per window"
    )
    ingestRateLimit = serializers.IntegerField(
        min_value=1, max_value=MAX_RATE_LIMIT, required=False, allow_null=True, help_text="event posts per second"
    )
    expiresAt = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The plaintext key. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
