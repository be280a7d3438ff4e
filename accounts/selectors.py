from accounts.keys import is_well_formed, key_matches, key_prefix
from accounts.models import ApiKey


def api_key_get_by_plaintext(*, plaintext: str) -> ApiKey | None:
    """The key with this plaintext, whatever its state (the caller decides about revoked or
    expired keys), or None. The hash is compared in constant time."""
    if not is_well_formed(plaintext):
        return None
    candidates = ApiKey.objects.select_related("project", "project__organization").filter(prefix=key_prefix(plaintext))
    for candidate in candidates:
        if key_matches(plaintext, candidate.key_hash):
            return candidate
    return None
