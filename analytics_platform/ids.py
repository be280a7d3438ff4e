"""Object ids in URL paths: a path segment is an id only if it is a positive decimal that
fits a BIGINT. Anything else is simply not found, with the same message as an unknown id."""

import re

OBJECT_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_ID = 2**63 - 1


def object_id(text) -> int | None:
    """The id `text` names, or None when it cannot name one."""
    text = str(text)
    if OBJECT_ID.fullmatch(text) and int(text) <= MAX_ID:
        return int(text)
    return None
