"""Realistic sample events for a project: users who sign up, come back in sessions, browse,
and go page_view → add_to_cart → checkout_start → purchase with drop-offs at each step.

Generated one user at a time and handed out in chunks, so memory stays flat whatever the
number of events. Event ids are derived from the seed, so re-running the same seed stores
nothing twice.
"""

import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from django.db import connection, models

from events.validation import canonical_json

PAGES = ["/", "/pricing", "/products", "/products/widget", "/products/gadget", "/blog", "/docs", "/about"]
REFERRERS = ["google.com", "twitter.com", "news.ycombinator.com", "direct", "newsletter"]
PLANS = ["free", "starter", "pro", "enterprise"]
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
]


def generate_rows(*, events: int, users: int, days: int, seed: int, now: datetime | None = None) -> Iterator[list]:
    """Yields job rows (events.validation.COLUMNS order) until `events` have been produced."""
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    start = now - timedelta(days=days)
    per_user = max(events / max(users, 1), 1.0)
    produced, user_index = 0, 0
    while produced < events:
        user_index += 1
        returning = user_index > users  # past the last new user, known users come back
        user = f"user_{rng.randint(1, users) if returning else user_index:07d}"
        budget = max(1, int(rng.lognormvariate(math.log(per_user), 0.6)))
        for row in _user_rows(rng, user, seed, user_index, start, now, days, budget, returning):
            yield row
            produced += 1
            if produced >= events:
                return


def _user_rows(rng, user, seed, user_index, start, now, days, budget, returning) -> Iterator[list]:
    signup_at = start + timedelta(seconds=rng.uniform(0, days * 86400 * 0.9))
    ip = f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    agent = rng.choice(AGENTS)
    counter = 0
    session_no = 0
    moment = signup_at
    while counter < budget and moment < now:
        session_no += 1
        session = f"s-{seed}-{user_index}-{session_no}"
        steps = []
        if session_no == 1 and not returning:
            steps.append(("signup", {"plan": rng.choice(PLANS), "source": rng.choice(REFERRERS)}, "/signup"))
        else:
            steps.append(("login", {"method": rng.choice(["password", "google", "sso"])}, "/login"))
        for _ in range(rng.randint(1, 6)):
            page = rng.choice(PAGES)
            steps.append(("page_view", {"path": page, "referrer": rng.choice(REFERRERS)}, page))
        if rng.random() < 0.35:
            price = round(rng.uniform(5, 250), 2)
            steps.append(("add_to_cart", {"productId": f"p{rng.randint(1, 50)}", "price": price}, "/cart"))
            if rng.random() < 0.55:
                steps.append(("checkout_start", {"items": rng.randint(1, 4)}, "/checkout"))
                if rng.random() < 0.6:
                    steps.append(("purchase", {"amount": price, "currency": "USD", "plan": rng.choice(PLANS)}, "/done"))
        for name, properties, page in steps:
            if counter >= budget or moment >= now:
                return
            counter += 1
            yield [
                f"seed:{seed}:{user_index}:{counter}",
                user,
                name,
                moment.isoformat(),
                canonical_json(properties),
                session,
                page,
                agent,
                ip,
                now.isoformat(),
            ]
            moment += timedelta(seconds=rng.randint(2, 240))
        # the next visit: mostly within days, with a long tail (so retention decays)
        moment += timedelta(hours=rng.expovariate(1 / 40))


def chunked(rows: Iterator[list], size: int) -> Iterator[list[list]]:
    chunk: list[list] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tables_analyze(*, tables: Iterable[type[models.Model]]) -> None:
    """Brings the query planner's statistics up to date after a bulk load (seed). Until
    autovacuum gets to it, or never where it is off, PostgreSQL plans a freshly filled table
    as if it were empty: retention on 1M seeded events took 90 s instead of 0.2 s (when it
    ran in PostgreSQL; journeys still do). SQLite's ANALYZE feeds its planner the same way."""
    with connection.cursor() as cursor:
        for model in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
