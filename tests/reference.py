"""Brute-force references for the analytics runners: plain loops over a list of events,
slow and obviously right, sharing no code with the application.

Calendar boundaries are found by stepping through time in 15-minute steps and keeping the
instants whose local wall-clock time starts a bucket, which handles DST and half-hour
zones without any cleverness."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

STEP = timedelta(minutes=15)


def _starts_bucket(local: datetime, interval: str) -> bool:
    if local.minute or local.second or local.microsecond:
        return False
    if interval == "hour":
        return True
    if local.hour:
        return False
    if interval == "day":
        return True
    if interval == "week":
        return local.weekday() == 0
    return local.day == 1  # month


def boundaries(interval: str, tz: ZoneInfo, first: datetime, last: datetime, step: timedelta = STEP) -> list[datetime]:
    """Every bucket start (UTC) from the last one at or before `first` to the first one after
    `last`, found by walking UTC instants `step` apart (from a whole hour), so every local
    midnight must fall on one: 15 minutes holds for every zone today, not for all of history."""
    first = first.astimezone(UTC)
    moment = first.replace(minute=0, second=0, microsecond=0)
    moment += (first - moment) // step * step
    found = []
    back = moment
    while True:  # the last start at or before `first`
        if _starts_bucket(back.astimezone(tz), interval):
            found.append(back)
            break
        back -= step
    moment = back + step
    while True:
        if _starts_bucket(moment.astimezone(tz), interval):
            found.append(moment)
            if moment > last:
                return found
        moment += step


def _index(bounds: list[datetime], moment: datetime) -> int:
    return max(i for i, b in enumerate(bounds) if b <= moment)


def metrics(events, tz: ZoneInfo, interval: str, start: datetime, end: datetime, event=None, step=STEP):
    bounds = boundaries(interval, tz, start, end - timedelta(microseconds=1), step)
    counts, users = defaultdict(int), defaultdict(set)
    for user, name, moment in events:
        if start <= moment < end and (event is None or name == event):
            i = _index(bounds, moment)
            counts[i] += 1
            users[i].add(user)
    return [
        {"start": bounds[i].astimezone(tz).isoformat(), "count": counts[i], "uniqueUsers": len(users[i])}
        for i in range(len(bounds) - 1)
    ]


def retention(events, tz, *, period, periods, kind, cumulative, start, end, now, cohort=None, returns=None):
    cohort_bounds = boundaries(period, tz, start, end - timedelta(microseconds=1))
    n_cohorts = len(cohort_bounds) - 1
    bounds = cohort_bounds[:]
    while len(bounds) < n_cohorts + periods + 1:
        bounds = boundaries(period, tz, bounds[0], bounds[-1] + timedelta(days=1))[: n_cohorts + periods + 1]
    members = set()  # (user, cohort index)
    if kind == "first_time":
        first = {}
        for user, name, moment in events:
            if cohort is None or name == cohort:
                first[user] = min(first.get(user, moment), moment)
        for user, moment in first.items():
            if start <= moment < end:
                members.add((user, _index(bounds, moment)))
    else:
        for user, name, moment in events:
            if (cohort is None or name == cohort) and start <= moment < end:
                members.add((user, _index(bounds, moment)))
    came_back = defaultdict(set)  # (user, cohort index) -> k values
    for user, name, moment in events:
        if (returns is None or name == returns) and bounds[0] <= moment < bounds[-1]:
            r = _index(bounds, moment)
            for c in range(n_cohorts):
                if (user, c) in members and 1 <= r - c <= periods:
                    came_back[(user, c)].add(r - c)
    rows = []
    for c in range(n_cohorts):
        size = sum(1 for (_, mc) in members if mc == c)
        retained = [size]
        for k in range(1, periods + 1):
            if bounds[c + k + 1] > now:
                retained.append(None)
            elif cumulative:
                retained.append(sum(1 for (u, mc) in members if mc == c and max(came_back[(u, mc)], default=0) >= k))
            else:
                retained.append(sum(1 for (u, mc) in members if mc == c and k in came_back[(u, mc)]))
        rates = [None if n is None else (n / size if size else 0.0) for n in retained]
        rows.append(
            {
                "cohortStart": bounds[c].astimezone(tz).date().isoformat(),
                "size": size,
                "retained": retained,
                "rates": rates,
            }
        )
    average = []
    for k in range(periods + 1):
        done = [r for r in rows if r["retained"][k] is not None]
        total = sum(r["size"] for r in done)
        average.append(sum(r["retained"][k] for r in done) / total if total else None)
    return rows, average


def sessions(events, gap=timedelta(minutes=30)):
    """events: (moment, session_id) in time order, within the range."""
    named, out, current = {}, [], None
    for moment, session in events:
        if session is not None:
            s = named.setdefault(session, {"sessionId": session, "start": moment, "end": moment, "eventCount": 0})
            s["start"], s["end"] = min(s["start"], moment), max(s["end"], moment)
            s["eventCount"] += 1
        else:
            if current is None or moment - current["end"] > gap:
                current = {"sessionId": None, "start": moment, "end": moment, "eventCount": 0}
                out.append(current)
            current["end"] = moment
            current["eventCount"] += 1
    out += named.values()
    out.sort(key=lambda s: (s["start"], s["sessionId"] or ""))
    return [{**s, "start": iso(s["start"]), "end": iso(s["end"])} for s in out]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- funnels (API.md, "Funnels")

_MISSING = object()


def _json_equal(a, b) -> bool:
    """JSON equality: 1 == 1.0, "1" != 1, true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return a == b


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def filter_matches(properties: dict, prop: str, spec) -> bool:
    actual = properties.get(prop, _MISSING)
    if not isinstance(spec, dict):
        spec = {"op": "eq", "value": spec}
    op, value = spec["op"], spec.get("value")
    if op == "exists":
        present = actual is not _MISSING and actual is not None
        return present if value else not present
    if op == "neq":
        return actual is _MISSING or not _json_equal(actual, value)
    if actual is _MISSING:
        return False
    if op == "eq":
        return _json_equal(actual, value)
    if op == "in":
        return any(_json_equal(actual, v) for v in value)
    if op == "contains":
        return isinstance(actual, str) and isinstance(value, str) and value in actual
    if not (_number(actual) and _number(value)):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op]


def _step_matches(step: dict, event: dict) -> bool:
    return event["name"] == step["eventName"] and all(
        filter_matches(event["properties"], prop, spec) for prop, spec in (step.get("filters") or {}).items()
    )


def _attempt_paths(events: list[dict], first: int, steps: list[dict], window: int, strict: bool):
    """Every path (list of event positions) an attempt starting at `first` can take."""
    found = []

    def extend(path):
        found.append(path)
        k = len(path)
        if k == len(steps):
            return
        prev = events[path[-1]]
        for j in range(path[-1] + 1, len(events)):
            candidate = events[j]
            if (candidate["ts"] - events[first]["ts"]).total_seconds() > window:
                break
            limit = steps[k].get("timeWindow")
            if limit is not None and (candidate["ts"] - prev["ts"]).total_seconds() > limit:
                continue
            if not _step_matches(steps[k], candidate):
                continue
            if strict and any(
                prev["ts"] < other["ts"] < candidate["ts"] for i, other in enumerate(events) if i not in path and i != j
            ):
                continue
            extend([*path, j])

    extend([first])
    return found


def funnel(events, steps: list[dict], *, window: int, order: str, start: datetime, end: datetime) -> dict:
    """events: dicts with user, name, ts (aware), properties, in storage order (ties keep it).
    Returns {"steps": [...API shape...], "overallConversionRate", "best": {user: path timestamps}}."""
    by_user = defaultdict(list)
    for event in events:
        # same-tzinfo datetimes compare and subtract as wall times: work in UTC
        by_user[event["user"]].append({**event, "ts": event["ts"].astimezone(UTC)})
    best = {}
    for user, mine in by_user.items():
        mine = sorted(mine, key=lambda e: e["ts"])  # stable: equal timestamps keep storage order
        for i, event in enumerate(mine):
            if not (start <= event["ts"] < end and _step_matches(steps[0], event)):
                continue
            paths = _attempt_paths(mine, i, steps, window, order == "strict")
            furthest = max(len(p) for p in paths)
            path = min((p for p in paths if len(p) == furthest), key=lambda p: [mine[j]["ts"] for j in p[1:]] + p[1:])
            times = [mine[j]["ts"] for j in path]
            # better = further; equally far: the earlier attempt (which comes first here) wins
            if user not in best or len(times) > len(best[user]):
                best[user] = times
    users = [sum(1 for times in best.values() if len(times) >= k) for k in range(1, len(steps) + 1)]
    out = []
    for k in range(len(steps)):
        gaps = sorted((t[k] - t[k - 1]).total_seconds() for t in best.values() if len(t) > k) if k else []
        median = None
        if gaps:
            mid = len(gaps) // 2
            median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
        out.append(
            {
                "step": k + 1,
                "eventName": steps[k]["eventName"],
                "users": users[k],
                "conversionRate": users[k] / users[0] if users[0] else 0.0,
                "stepConversionRate": (users[k] / users[k - 1] if users[k - 1] else 0.0)
                if k
                else (1.0 if users[0] else 0.0),
                "dropOff": users[k - 1] - users[k] if k else 0,
                "avgTimeToConvertSeconds": sum(gaps) / len(gaps) if gaps else None,
                "medianTimeToConvertSeconds": median,
            }
        )
    return {"steps": out, "overallConversionRate": users[-1] / users[0] if users[0] else 0.0, "best": best}
