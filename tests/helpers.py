"""Small helpers shared by the tests."""


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Asserts the one error shape and returns its `error` object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def run_django(code: str, **env: str) -> str:
    """Runs `code` in a fresh Python process with Django set up and the given environment
    on top of ours; returns its stdout. For what must be seen from outside this process
    (settings chosen by the environment, a service down at start-up)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "ALLOWED_HOSTS": "testserver", **env}
    script = "import django; django.setup()\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
