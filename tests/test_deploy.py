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


def test_env_example_lists_every_setting_the_code_reads():
    listed = {line.split("=")[0] for line in (ROOT / "env.example").read_text().splitlines() if "=" in line}
    settings_text = (ROOT / "analytics_platform" / "settings.py").read_text()

    read = set(re.findall(r'env(?:_bool|_int|_list)?\("([A-Z_]+)"', settings_text))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_text))
    assert read and read <= listed, read - listed


def test_rqworker_always_runs_the_scheduler():
    from django.core.management import get_commands, load_command_class

    assert get_commands()["rqworker"] == "events"
    command = load_command_class("events", "rqworker")
    assert "scheduler is always on" in command.help
