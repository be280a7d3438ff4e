from analytics_platform.errors import NotFound
from funnels.models import Funnel


def funnel_get(*, project, funnel_id) -> Funnel:
    """The project's funnel `funnel_id`; NotFound for another project's or a malformed id."""
    try:
        return Funnel.objects.get(project=project, pk=int(funnel_id))
    except (Funnel.DoesNotExist, TypeError, ValueError):
        raise NotFound("Funnel not found.", details={"funnelId": str(funnel_id)[:50]}) from None
