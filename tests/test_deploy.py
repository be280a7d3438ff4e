"""Docker is not available on these machines, so the compose file and Dockerfile are checked
statically: they parse, and every command they run exists in this project."""

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = ["migrate", "api", "worker"]


def check_command(argv: list[str]) -> None:
    """Fails unless `argv` is a manage.py command with valid arguments or a uvicorn app that imports."""
    if argv[:2] == ["python", "manage.py"]:
        name, args = argv[2], argv[3:]
        commands = get_commands()
        assert name in commands, f"no management command {name!r}"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        parser.parse_args(args)  # exits (SystemExit) on an unknown option
    elif argv[0] == "uvicorn":
        module, _, attribute = argv[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute))
    else:
        pytest.fail(f"unexpected command {argv}")


def test_compose_has_the_stack():
    services = COMPOSE["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "adminer", "redis-commander"} <= set(services)
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["adminer"]["profiles"] == ["dev"] and services["redis-commander"]["profiles"] == ["dev"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert env["DEBUG"] == "0" and "SECRET_KEY" in env


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_compose_command_exists(service):
    check_command(COMPOSE["services"][service]["command"])


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            source = line.split()[-2]
            assert source == "." or (ROOT / source).exists(), line
    cmd = [line for line in lines if line.startswith("CMD ")][-1]  # the first belongs to HEALTHCHECK
    shell = yaml.safe_load(cmd[4:])[-1]  # ["sh", "-c", "exec uvicorn ..."]
    check_command(shlex.split(shell.replace("${PORT}", "8000").replace("${WEB_CONCURRENCY:-2}", "2"))[1:3])


def env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / "env.example").read_text(), re.M))


def env_example_names() -> list[str]:
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / "env.example").read_text(), re.M)


def test_env_example_lists_every_setting_the_code_reads():
    """A setting read from the environment but missing from env.example is one nobody can
    find, and (test below) one the containers never receive."""
    settings_text = (ROOT / "analytics_platform" / "settings.py").read_text()
    name = r"""["']([A-Z][A-Z0-9_]*)["']"""
    read = set(re.findall(rf"\benv(?:_bool|_int|_list)?\({name}", settings_text))
    read |= set(re.findall(rf"os\.(?:environ\.get\(|getenv\(|environ\[){name}", settings_text))
    # the grep itself must not rot: names read each way (single quotes inside an f-string too)
    assert {"SECRET_KEY", "DEBUG", "HTTP_THREADS", "ALLOWED_HOSTS", "DATABASE_WORK_MEM_MB"} <= read
    assert read <= set(env_example_names()), sorted(read - set(env_example_names()))


# Compose sets these itself (its own services, production mode), so env.example's values for a
# local run must not leak in; IMAGE_PATHS are paths inside the image (docker-compose.yml says why).
SET_BY_COMPOSE = {"DATABASE_URL": "postgres://", "REDIS_URL": "redis://", "DEBUG": "0"}
IMAGE_PATHS = {"DATA_DIR", "STATIC_ROOT", "ANALYTICS_DIR", "ANALYTICS_SPILL_DIR"}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_env_example_variable_reaches_the_app_containers(service):
    env = COMPOSE["services"][service]["environment"]
    names = env_example_names()
    assert len(names) == len(set(names)), "a variable is listed twice in env.example"
    for name in names:
        if name in IMAGE_PATHS:
            assert name not in env, f"{name} is the image's own path (Dockerfile), not the host's"
        elif name in SET_BY_COMPOSE:
            assert str(env[name]).startswith(SET_BY_COMPOSE[name]), (name, env.get(name))
        else:
            # passed through from the environment or .env, with a default: ${NAME:-default}
            assert name in env, f"{name} from env.example never reaches the {service} container"
            passed = re.fullmatch(rf"\$\{{{name}:([-?])(.*)\}}", str(env[name]))
            assert passed, (name, env[name])
            if passed[1] == "-":  # the same default as env.example documents
                assert passed[2] == env_example()[name], (name, passed[2], env_example()[name])
    assert "/data" in (ROOT / "Dockerfile").read_text()  # where DATA_DIR points instead


def test_rqworker_always_runs_the_scheduler():
    from django.core.management import get_commands, load_command_class

    assert get_commands()["rqworker"] == "events"
    command = load_command_class("events", "rqworker")
    assert "scheduler is always on" in command.help


README = (ROOT / "README.md").read_text()


def test_readme_commands_work_as_typed():
    """From a fresh clone after `make run`: no bare `python` (no virtualenv is active), only
    management commands and options that exist, only make targets the Makefile has."""
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    used = set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", README, re.M))
    assert {"run", "test", "seed"} <= used and used <= targets, used - targets
    commands = get_commands()
    invocations = re.findall(r"(\S+) manage\.py ([a-z_]+)([^`|\n]*)", README)
    assert len(invocations) >= 8
    for line in README.splitlines():
        for interpreter in re.findall(r"(\S+) manage\.py", line):
            in_container = interpreter == "python" and "docker compose run --rm api python manage.py" in line
            assert interpreter == ".venv/bin/python" or in_container, line
    for _, name, args in invocations:
        assert name in commands, f"README names no such command: {name}"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", args):
            assert option in parser._option_string_actions, f"manage.py {name} has no {option}"


def test_readme_analytics_examples_show_what_seed_wrote():
    """`make seed` writes the last 30 days; examples pinned to other dates showed zeros."""
    from events.seeding import generate_rows

    endpoints = ["events/summary", "metrics", "retention", "users/[^/]+/journey", "funnels/1/analytics"]
    for endpoint in endpoints:
        urls = re.findall(rf"/api/v1/{endpoint}(?:\?[^\"' ]*)?", README)
        assert urls, endpoint
        assert any(not re.search(r"(startDate|endDate)=\d", url) for url in urls), (endpoint, urls)
    (journey_user,) = re.findall(r"/api/v1/users/([^/]+)/journey", README)
    seeded_users = {row[1] for row in generate_rows(events=2000, users=100, days=30, seed=1)}
    assert journey_user in seeded_users


def test_the_healthcheck_calls_the_path_answered_before_host_validation():
    """The image's HEALTHCHECK calls by address; only HEALTH_PATH is answered for any Host."""
    from django.conf import settings

    from analytics_platform.middleware import HEALTH_PATH

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"http://127\.0\.0\.1:\{[^}]*\}" + re.escape(HEALTH_PATH) + r"\\\"", dockerfile)
    middleware = settings.MIDDLEWARE
    health = middleware.index("analytics_platform.middleware.HealthCheckMiddleware")
    assert health < middleware.index("django.middleware.common.CommonMiddleware")  # the first to read Host
    assert health < middleware.index("django.middleware.security.SecurityMiddleware")  # may redirect to https
