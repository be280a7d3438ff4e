import redis
from django.conf import settings
from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.errors import error_body
from analytics_platform.redis import redis_client

HEALTH_SCHEMA = inline_serializer(
    "Health",
    {"status": serializers.CharField(), "database": serializers.CharField(), "redis": serializers.CharField()},
)


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        connection.close()  # a fresh connection next time, once the database is back
        return "down"


def redis_status() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    try:
        redis_client().ping()
        return "ok"
    except redis.RedisError:
        return "down"


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses={200: HEALTH_SCHEMA, 503: OpenApiResponse(description="A backing service is down.")})
    def get(self, request):
        checks = {"database": database_status(), "redis": redis_status()}
        down = [name for name, state in checks.items() if state == "down"]
        if not down:
            return Response({"status": "ok", **checks})
        body = {"status": "unavailable", **checks, **error_body("service_unavailable", f"Down: {', '.join(down)}.")}
        return Response(body, status=503, headers={"Retry-After": "5"})
