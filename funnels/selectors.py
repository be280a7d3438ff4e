from analytics_platform.errors import NotFound
from analytics_platform.ids import object_id
from funnels.models import Funnel


def funnel_get(*, project, funnel_id) -> Funnel:
    """The project's funnel `funnel_id` (an int or its decimal text); NotFound, with one
    message, for an unknown id, another project's, or anything that is not an id at all
    (including numbers past BIGINT, which no database lookup could take)."""
    pk = object_id(funnel_id)
    funnel = None if pk is None else Funnel.objects.filter(project=project, pk=pk).first()
    if funnel is None:
        raise NotFound("Funnel not found.", details={"funnelId": str(funnel_id)[:50]})
    return funnel
