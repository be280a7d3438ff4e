"""The dashboard's pages on 1M seeded events (a report, not a test): `python bench/pages.py`.

queries.py's seeded database and mirror (the same events, reused when already there), one
uvicorn process on PostgreSQL and Redis with the answers' cache on, a signed-in superuser.
Each page is requested BENCH_RUNS times cold (the Redis database emptied first: no cached
answer, no cached key) and BENCH_RUNS times cached (right after); the medians of the server
time (request to last byte, on a new connection each) are printed with the page's size.
Then the static files the pages ship (CSS and JS), raw and gzipped, against issue 13's
150 KB budget.

BENCH_SIZES (1000000) picks the seeded size, BENCH_RUNS (5) the repeats.
"""

import gzip
import http.cookiejar
import json
import os
import re
import secrets
import statistics
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import redis

os.environ.setdefault("BENCH_SIZES", "1000000")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import queries  # noqa: E402  (its seeded database, web process and key)

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
USER = "bench_pages"
STATIC = queries.ROOT / "static" / "dashboard"
BUDGET_KB = 150


class Browser:
    """A session cookie and the CSRF token, as a browser keeps them."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def url(self, path: str) -> str:
        return f"http://{queries.HOST}:{queries.PORT}{path}"

    def get(self, path: str) -> tuple[float, int, int]:
        """(ms, status, bytes) of one GET."""
        started = time.perf_counter()
        try:
            with self.opener.open(self.url(path), timeout=600) as response:  # noqa: S310 (http://HOST:PORT only)
                status, size = response.status, len(response.read())
        except urllib.error.HTTPError as error:
            status, size = error.code, len(error.read())
        return (time.perf_counter() - started) * 1000, status, size

    def login(self, password: str) -> None:
        with self.opener.open(self.url("/accounts/login/"), timeout=60) as response:
            token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.read()).group(1).decode()
        form = urllib.parse.urlencode({"username": USER, "password": password, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.url("/accounts/login/"), data=form, headers={"Referer": self.url("/")})  # noqa: S310
        with self.opener.open(request, timeout=60) as response:
            if "/accounts/login/" in response.url:
                raise SystemExit("the benchmark's user could not sign in")


def superuser(tree: Path, env: dict) -> str:
    """The benchmark's superuser, with a new password each run."""
    password = secrets.token_urlsafe(16)
    code = (
        "from django.contrib.auth.models import User; "
        f"u, _ = User.objects.get_or_create(username={USER!r}); "
        f"u.is_superuser = u.is_staff = True; u.set_password({password!r}); u.save()"
    )
    queries.manage(tree, env, "shell", "-c", code)
    return password


def pages(slug: str, funnel: int, user_id: str) -> dict[str, str]:
    quoted = urllib.parse.quote(user_id, safe="")
    return {
        "overview": f"/p/{slug}/",
        "live": f"/p/{slug}/live",
        "trends": f"/p/{slug}/trends?event=page_view&interval=day",
        "funnels": f"/p/{slug}/funnels",
        "funnel": f"/p/{slug}/funnels/{funnel}",
        "funnel, dropped users": f"/p/{slug}/funnels/{funnel}?step=2&status=dropped",
        "retention": f"/p/{slug}/retention?cohort={queries.RETENTION_COHORT}",
        "user journey": f"/p/{slug}/users/{quoted}",
        "settings": f"/p/{slug}/settings",
    }


def static_sizes() -> dict:
    files = sorted(p for p in STATIC.rglob("*") if p.suffix in (".css", ".js"))
    sizes = {str(p.relative_to(STATIC)): (p.stat().st_size, len(gzip.compress(p.read_bytes(), 9))) for p in files}
    return {"files": sizes, "gzip_total": sum(gz for _, gz in sizes.values())}


def main():
    size = queries.SIZES[0]
    tree, app = queries.app_tree()
    seeded = queries.ensure_seeded(size, tree)
    env = {**queries.app_env(size), "CACHE_TTL_SECONDS": "300"}  # the pages' cache as deployed
    password = superuser(tree, env)
    db, project_id = seeded["database"], seeded["project_id"]
    slug = queries.pg(db, "SELECT slug FROM accounts_project WHERE id = %s", [project_id])[0][0]
    user_id = queries.pg(db, "SELECT user_id FROM events_event WHERE project_id = %s LIMIT 1", [project_id])[0][0]
    log = queries.BENCH_DIR / "pages-web.log"
    web = queries.Web(tree, env, log)
    cache = redis.Redis.from_url(queries.REDIS_URL)
    results = {}
    try:
        key = queries.api_key(tree, env, size)
        funnel = queries.funnel_id(key)
        browser = Browser()
        browser.login(password)
        for name, path in pages(slug, funnel, user_id).items():
            cold, cached, status, body = [], [], None, 0
            for _ in range(RUNS):
                cache.flushdb()
                ms, status, body = browser.get(path)
                cold.append(ms)
                cached.append(browser.get(path)[0])
            if status != 200:
                raise SystemExit(f"{path}: {status} (see {log})")
            results[name] = {
                "path": path,
                "cold_ms": round(statistics.median(cold), 1),
                "cached_ms": round(statistics.median(cached), 1),
                "bytes": body,
            }
            print(
                f"{name:24}{results[name]['cold_ms']:>10} ms cold{results[name]['cached_ms']:>10} ms cached"
                f"{body / 1024:>9.1f} KB",
                flush=True,
            )
    finally:
        web.stop()
    shipped = static_sizes()
    for name, (raw, gz) in shipped["files"].items():
        print(f"{name:24}{raw / 1024:>10.1f} KB{gz / 1024:>10.1f} KB gzipped")
    verdict = "met" if shipped["gzip_total"] <= BUDGET_KB * 1024 else "MISSED"
    print(f"CSS + JS shipped: {shipped['gzip_total'] / 1024:.1f} KB gzipped (budget {BUDGET_KB} KB: {verdict})")
    report = {
        "when": datetime.now(UTC).isoformat(),
        "app": app,
        "events": size,
        "runs": RUNS,
        "pages": results,
        "static": shipped,
        "machine": queries.uptime(),
    }
    out = queries.BENCH / "results" / f"pages-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out.relative_to(queries.ROOT)}")


if __name__ == "__main__":
    main()
