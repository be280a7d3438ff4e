"""A process of its own for the crash tests: runs a list of operations on the mirror and
prints one JSON line per operation as it completes, so a test can kill it (SIGKILL) at a
named step (warehouse.files.step) and see what was done before.

    python -m tests.warehouse.driver '[["project"], ["store", {"project": 1, ...}], ...]'

Operations: migrate; project (creates one, used by the next operations); use <id>; store
{count, days, tag}; export {limit?}; compact {day}; rebuild; spans (every month merged);
sweep {grace}; crash_at <step>
(the next step of that name kills this process); pause_at <step> (stops it with SIGSTOP
there); state. Events are stored with the automatic export off, so only the operations
named move them.
"""

import json
import os
import sys
from datetime import date

import django


def run(operation: str, arguments, context: dict) -> object:
    from django.core.management import call_command
    from django.test import override_settings

    from tests.warehouse.helpers import mirror_state, spread, store
    from warehouse.compact import mirror_sweep, partition_compact
    from warehouse.export import EXPORT_BATCH, mirror_export
    from warehouse.rebuild import mirror_rebuild
    from warehouse.spans import spans_merge

    if operation in ("crash_at", "pause_at"):
        os.environ[f"WAREHOUSE_{operation.upper()}"] = arguments
        return None
    if operation == "migrate":
        call_command("migrate", verbosity=0)
        return None
    if operation == "project":
        from accounts.services import organization_get_or_create, project_get_or_create

        organization = organization_get_or_create(name="Crash")
        project = project_get_or_create(organization=organization, name=f"Crash {os.getpid()}", timezone_name="UTC")
        context["project"] = project.id
        return project.id
    if operation == "use":
        context["project"] = arguments
        return arguments
    arguments = {"project": context.get("project"), **(arguments if isinstance(arguments, dict) else {})}
    if operation == "store":
        events = spread(arguments["count"], arguments["days"])
        store(arguments["project"], events, tag=arguments["tag"])
        return len(events)
    if operation == "export":
        return mirror_export(project_id=arguments["project"], limit=arguments.get("limit", EXPORT_BATCH))[0]
    if operation == "compact":
        return partition_compact(project_id=arguments["project"], day=date.fromisoformat(arguments["day"]))
    if operation == "rebuild":
        return mirror_rebuild(project_id=arguments["project"])
    if operation == "spans":
        return spans_merge(project_id=arguments["project"], today=date.max)
    if operation == "sweep":
        with override_settings(ANALYTICS_GRACE_SECONDS=arguments["grace"]):
            return mirror_sweep()
    if operation == "state":
        return mirror_state(arguments["project"])
    raise ValueError(f"unknown operation {operation!r}")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    import events.services

    events.services.export_schedule = lambda project_id: None  # only the operations export
    context: dict = {}
    for operation, *arguments in json.loads(sys.argv[1]):
        result = run(operation, arguments[0] if arguments else None, context)
        print(json.dumps({"op": operation, "result": result}), flush=True)


if __name__ == "__main__":
    main()
