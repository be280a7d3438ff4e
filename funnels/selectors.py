import re

from analytics_platform.errors import NotFound
from funnels.models import Funnel

FUNNEL_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_ID = 2**63 - 1


def funnel_get(*, project, funnel_id) -> Funnel:
    """The project's funnel `funnel_id` (an int or its decimal text); NotFound, with one
    message, for an unknown id, another project's, or anything that is not an id at all
    (including numbers past BIGINT, which no database lookup could take)."""
    text = str(funnel_id)
    if FUNNEL_ID.fullmatch(text) and int(text) <= MAX_ID:
        funnel = Funnel.objects.filter(project=project, pk=int(text)).first()
        if funnel is not None:
            return funnel
    raise NotFound("Funnel not found.", details={"funnelId": text[:50]})
