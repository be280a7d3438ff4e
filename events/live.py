"""Publishing stored events to the project's live-stream group (the WebSocket consumer
forwards them). Called after commit, with only the rows that were actually inserted."""

import json

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = structlog.get_logger(__name__)


def project_group(project_id: int) -> str:
    return f"project-events.{project_id}"


def event_message(row: list) -> dict:
    """A job row (COLUMNS order) in the journey's field names."""
    event_id, user_id, event_name, timestamp, properties_json, session_id, page_url = row[:7]
    return {
        "eventId": event_id,
        "userId": user_id,
        "eventName": event_name,
        "timestamp": timestamp.replace("+00:00", "Z"),  # stored rows are UTC
        "properties": json.loads(properties_json),
        "sessionId": session_id,
        "pageUrl": page_url,
    }


def live_publish(*, project_id: int, rows: list[list]) -> None:
    layer = get_channel_layer()
    if layer is None or not rows:
        return
    try:
        async_to_sync(layer.group_send)(
            project_group(project_id), {"type": "events.stored", "events": [event_message(row) for row in rows]}
        )
    except Exception as exc:  # the events are stored; a live view missing them is not worth a retry
        logger.warning("live_publish_failed", project_id=project_id, error=type(exc).__name__)
