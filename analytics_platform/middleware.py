"""`/health` answered before anything validates the Host header.

The container's HEALTHCHECK, a load balancer's or an orchestrator's probe call the process by
its address (`http://127.0.0.1:8000/health`), not by the public name in ALLOWED_HOSTS, so
behind Django's host validation they would get 400 and mark a healthy process dead. The
health answer depends on nothing from the Host header (no absolute URL, no redirect, nothing
cached per host), which is what host validation protects; every other path still goes
through it. Placed before CommonMiddleware, the first that calls `request.get_host()`.

An HTTP probe rather than a management command: it proves the serving process itself answers.
"""

from analytics_platform.health import HealthView

HEALTH_PATH = "/health"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.health_view = HealthView.as_view()

    def __call__(self, request):
        if request.path_info != HEALTH_PATH:
            return self.get_response(request)
        response = self.health_view(request)
        response.render()  # a DRF Response; the handler renders only what views return
        return response
