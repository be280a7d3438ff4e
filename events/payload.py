"""Reading an ingestion request's body: content type, gzip, the 5 MB limit (JSON is
events.validation's).

The limit counts the decompressed bytes, and decompression stops one byte past it, so a
gzip bomb costs at most 5 MB of memory before it is refused.
"""

import ipaddress
import zlib

from django.conf import settings
from rest_framework.exceptions import ParseError, UnsupportedMediaType

from analytics_platform.errors import PayloadTooLarge

MAX_BODY_BYTES = 5 * 1024 * 1024


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge("The body is over 5 MB (after decompression).", details={"maxBytes": MAX_BODY_BYTES})


def gunzip_limited(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise ParseError("The body is not valid gzip.") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large()
    if not inflater.eof:
        raise ParseError("The gzip body is truncated.")
    return out


def read_body(request) -> bytes:
    """The body of an ingestion request, decompressed: application/json, or text/plain
    holding JSON (what a page's sendBeacon sends without a CORS preflight). Raises
    UnsupportedMediaType (415), PayloadTooLarge (413) or ParseError (400)."""
    content_type = request.content_type.split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/plain") and not content_type.endswith("+json"):
        raise UnsupportedMediaType(content_type or "none")
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        raw = gunzip_limited(raw)
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(content_type, detail=f"Content-Encoding {encoding!r} is not supported (use gzip).")
    if not raw.strip():
        raise ParseError("The body is empty: send one event object or an array of events.")
    return raw


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in settings.TRUSTED_PROXIES)


def client_ip(request) -> str | None:
    return client_ip_of(request.META.get("REMOTE_ADDR") or None, request.META.get("HTTP_X_FORWARDED_FOR", ""))


def client_ip_of(remote: str | None, forwarded_for: str) -> str | None:
    """The peer's address, or, when it is a configured trusted proxy, the nearest untrusted
    address in X-Forwarded-For (so a client cannot forge its address past our own proxies)."""
    if remote and settings.TRUSTED_PROXIES and _is_trusted(remote):
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    break
    try:
        return str(ipaddress.ip_address(remote)) if remote else None
    except ValueError:
        return None
