"""django-rq's `rqworker`, always with RQ's scheduler: the ingest buffer's timed drains are
scheduled jobs, so a worker started as API.md says (`manage.py rqworker`) must run them.
The worker class comes from settings.RQ (events.worker.RecoveringWorker: dead workers and
Redis restarts are noticed in seconds, see that module). Its DuckDB gets the workers' memory
bound (ANALYTICS_WORKER_MEMORY_LIMIT)."""

from django_rq.management.commands.rqworker import Command as RQWorkerCommand

from warehouse import engine


class Command(RQWorkerCommand):
    help = RQWorkerCommand.help + " The scheduler is always on here (the ingest buffer needs it)."

    def handle(self, *args, **options):
        options["with_scheduler"] = True
        engine.for_workers()
        return super().handle(*args, **options)
