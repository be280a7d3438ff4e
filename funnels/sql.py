"""The funnel's SQL, generated per funnel for SQLite and PostgreSQL (the algorithm is
described in funnels/queries.py). Times are integer microseconds since the epoch, so window
frames can be numeric ranges in both databases."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection

from analytics_platform.sql import ts

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _pg() -> bool:
    return connection.vendor == "postgresql"


# ------------------------------------------------------------------ property predicates


@dataclass(frozen=True)
class Prop:
    """SQL for one property of `e.properties`: its JSON type, its scalar value, its JSON text."""

    type: str
    value: str
    json: str
    params: list

    @classmethod
    def of(cls, key: str) -> "Prop":
        if _pg():
            return cls(
                "jsonb_typeof(e.properties -> %s)", "(e.properties ->> %s)", "((e.properties -> %s)::text)", [key]
            )
        if '"' not in key:
            path = '$."' + key + '"'
            return cls("json_type(e.properties, %s)", "json_extract(e.properties, %s)", "(e.properties -> %s)", [path])
        # SQLite's JSON paths cannot quote a '"' inside a key: look the key up by name instead
        each = "(SELECT {} FROM json_each(e.properties) j WHERE j.key = %s)"
        as_json = (
            "CASE j.type WHEN 'text' THEN json_quote(j.value) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "WHEN 'null' THEN 'null' ELSE CAST(j.value AS TEXT) END"
        )
        return cls(each.format("j.type"), each.format("j.value"), each.format(as_json), [key])

    def is_string(self) -> tuple[str, list]:
        return f"{self.type} = %s", [*self.params, "string" if _pg() else "text"]

    def is_number(self) -> str:
        return f"{self.type} = 'number'" if _pg() else f"{self.type} IN ('integer', 'real')"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equals(prop: Prop, value) -> tuple[str, list]:
    """JSON equality: 1 == 1.0, "1" != 1, true != 1 (API.md, "Funnels")."""
    p = prop.params
    if isinstance(value, bool):
        if _pg():
            return f"({prop.type} = 'boolean' AND {prop.value} = %s)", [*p, *p, "true" if value else "false"]
        return f"{prop.type} = %s", [*p, "true" if value else "false"]
    if value is None:
        return f"{prop.type} = 'null'", [*p]
    if _is_number(value):
        if _pg():
            return f"(CASE WHEN {prop.is_number()} THEN {prop.value}::float8 = %s ELSE FALSE END)", [*p, *p, value]
        return f"({prop.is_number()} AND {prop.value} = %s)", [*p, *p, value]
    if isinstance(value, str):
        check, check_params = prop.is_string()
        return f"({check} AND {prop.value} = %s)", [*check_params, *p, value]
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if _pg():
        return "(e.properties -> %s) = %s::jsonb", [*p, text]
    return f"(json({prop.json}) = json(%s))", [*p, text]


def filter_predicate(key: str, spec) -> tuple[str, list]:
    """One step filter (validated by funnels.serializers) as a boolean SQL expression."""
    prop = Prop.of(key)
    if not isinstance(spec, dict):
        spec = {"op": "eq", "value": spec}
    op, value = spec["op"], spec.get("value")
    p = prop.params
    if op == "eq":
        return _equals(prop, value)
    if op == "neq":
        sql, params = _equals(prop, value)
        return f"NOT COALESCE({sql}, FALSE)", params
    if op == "in":
        parts = [_equals(prop, v) for v in value]
        if not parts:
            return "FALSE", []
        return "(" + " OR ".join(sql for sql, _ in parts) + ")", [x for _, params in parts for x in params]
    if op == "exists":
        present = f"({prop.type} IS NOT NULL AND {prop.type} <> 'null')"
        return (present if value else f"NOT {present}"), [*p, *p]
    if op == "contains":
        check, check_params = prop.is_string()
        find = "strpos({}, %s) > 0" if _pg() else "instr({}, %s) > 0"
        return f"(CASE WHEN {check} THEN {find.format(prop.value)} ELSE FALSE END)", [*check_params, *p, value]
    compare = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    number = f"{prop.value}::float8" if _pg() else prop.value
    return f"(CASE WHEN {prop.is_number()} THEN {number} {compare} %s ELSE FALSE END)", [*p, *p, value]


def step_predicate(step: dict) -> tuple[str, list]:
    sql, params = "e.event_name = %s", [step["eventName"]]
    for key, spec in (step.get("filters") or {}).items():
        part, part_params = filter_predicate(key, spec)
        sql += f" AND {part}"
        params += part_params
    return sql, params


# ------------------------------------------------------------------ the statement


def _micros(column: str) -> str:
    if _pg():  # exact: the epoch in seconds is a double with well under a microsecond of error
        return f"(date_part('epoch', {column}) * 1000000)::bigint"
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC
    seconds = f"CAST(strftime('%%s', {column}) AS INTEGER)"
    return f"({seconds} * 1000000 + CAST(substr({column} || '.000000', 21, 6) AS INTEGER))"


def _lesser(a: str, b: str) -> str:
    """The smaller of two nullable values (NULL only when both are)."""
    return f"(CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} <= {b} THEN {a} ELSE {b} END)"


def _pack(t: str, pk: str, prop: str) -> str:
    """(time, id, breakdown value) as text whose order is (time, id): `min` picks the earliest."""
    if _pg():
        return f"(lpad({t}::text, 20, '0') || lpad({pk}::text, 20, '0') || COALESCE({prop}, '')) COLLATE \"C\""
    return f"(printf('%%020d%%020d', {t}, {pk}) || COALESCE({prop}, ''))"


def _int(text: str) -> str:
    return f"CAST({text} AS bigint)" if _pg() else f"CAST({text} AS INTEGER)"


@dataclass(frozen=True)
class FunnelSQL:
    sql: str
    params: list


@dataclass(frozen=True)
class Spec:
    project_id: int
    steps: list
    window: int  # seconds
    start: datetime
    end: datetime
    breakdown: str | None
    part: tuple[int, int] | None = None  # (index, count): only the users hashed to this part

    @property
    def users(self) -> str:
        """The extra condition selecting this part's users (PostgreSQL's hashtext; count is a
        power of two), or nothing."""
        if self.part is None:
            return ""
        index, count = self.part
        return f" AND (hashtext(e.user_id) & {int(count) - 1}) = {int(index)}"

    @property
    def n(self) -> int:
        return len(self.steps)

    @property
    def w(self) -> int:
        return self.window * US


OUTPUT = "u, rn, reached, win, is_cand, t, id, gi"


def funnel_sql(
    *, project_id: int, steps: list[dict], window: int, strict: bool, start, end, breakdown, part=None
) -> FunnelSQL:
    """Rows of two kinds: one per entering user (`rn = 1`, carrying `reached`, the furthest
    step, and `win`, the packed (time, id, breakdown value) of the earliest attempt start that
    reaches it) and the "candidate" rows (`is_cand = 1`) from which that attempt's path is
    picked. Columns: u, rn, reached, win, is_cand, t, id, gi, m2..mn, c2..cn, where c_k is
    the earliest time the user's furthest step can be completed when this row fills step k."""
    spec = Spec(project_id, steps, window, start, end, breakdown, part)
    return _strict_sql(spec) if strict else _skeleton_sql(spec)


def _scan(spec: Spec, *, first: int, names: list[str] | None, prop: bool = True) -> tuple[str, list]:
    """The events of the span [start, end + window] as (u, id, t, m{first}..m{n}, prop)."""
    params: list = []
    user = 'e.user_id COLLATE "C"' if _pg() else "e.user_id"
    flags = []
    for k in range(first, spec.n + 1):
        predicate, predicate_params = step_predicate(spec.steps[k - 1])
        flags.append(f"CASE WHEN {predicate} THEN 1 ELSE 0 END AS m{k}")
        params += predicate_params
    value, value_params = _breakdown_value(spec) if prop else ("NULL", [])
    params += value_params
    where = "e.project_id = %s AND e.timestamp >= %s AND e.timestamp <= %s"
    params += [spec.project_id, ts(spec.start), ts(spec.end + timedelta(seconds=spec.window))]
    if names is not None:  # only these events can matter (the (project, event_name, timestamp) index)
        where += f" AND e.event_name IN ({', '.join(['%s'] * len(names))})"
        params += names
    columns = f"{user} AS u, e.id AS id, {_micros('e.timestamp')} AS t, {', '.join(flags)}, {value} AS prop"
    return f"SELECT {columns} FROM events_event e WHERE {where}{spec.users}", params


def _breakdown_value(spec: Spec) -> tuple[str, list]:
    if spec.breakdown is None:
        return "NULL", []
    prop = Prop.of(spec.breakdown)
    return prop.json, prop.params


def _levels(spec: Spec, source: str, *, lowest: int, strict: bool) -> list[str]:
    """CTEs lv{n} .. lv{lowest} over `source`: b{K}_{k}, the earliest time steps k..K can be
    completed when this row fills step k (NULL when they cannot), from the rows after it."""
    n = spec.n
    any_step = " + ".join(f"m{k}" for k in range(lowest, n + 1))
    ctes = [
        f"lv{n} AS (SELECT {source}.*, CASE WHEN m{n} = 1 THEN t END AS b{n}_{n} FROM {source} WHERE {any_step} > 0)"
    ]
    for k in range(n - 1, lowest - 1, -1):
        gap = spec.steps[k].get("timeWindow")  # the constraint between step k and step k+1
        fills = "st = 1" if k == 1 else f"m{k} = 1"
        columns = [
            f"CASE WHEN {fills} THEN {_after(f'b{K}_{k + 1}', strict, gap)} END AS b{K}_{k}"
            for K in range(k + 1, n + 1)
        ]
        if k >= 2:
            columns.append(f"CASE WHEN m{k} = 1 THEN t END AS b{k}_{k}")
        ctes.append(f"lv{k} AS (SELECT lv{k + 1}.*, {', '.join(columns)} FROM lv{k + 1} WINDOW {_frames(strict, gap)})")
    return ctes


def _chosen(n: int) -> str:
    """c_k = b{reached}_k: the completion time that matters for this user."""
    chosen = []
    for k in range(2, n + 1):
        cases = " ".join(f"WHEN {K} THEN b{K}_{k}" for K in range(k, n + 1))
        chosen.append(f"CASE reached {cases} END AS c{k}")
    return ", ".join(chosen)


def _candidate(n: int, w: int) -> str:
    feasible = " OR ".join(f"(m{k} = 1 AND c{k} <= win_t + {w})" for k in range(2, n + 1))
    return f"(reached >= 2 AND t >= win_t AND t <= win_t + {w} AND (id = win_id OR {feasible}))"


def _outputs(n: int) -> str:
    return ", ".join([*(f"m{k}" for k in range(2, n + 1)), *(f"c{k}" for k in range(2, n + 1))])


def _win_columns(win: str) -> str:
    return f"{_int(f'substr({win}, 1, 20)')} AS win_t, {_int(f'substr({win}, 21, 20)')} AS win_id"


def _skeleton_sql(spec: Spec) -> FunnelSQL:
    """Ordered funnels. Levels n-1 .. 2 run on the "skeleton" only (the rows that can fill
    steps 2..n: few), and the many step-1 rows of the range join it for a single pass: one
    sort of both, one window (level 1: b{K}_1 of each start), one aggregate per user."""
    n, w = spec.n, spec.w
    later_names = sorted({step["eventName"] for step in spec.steps[1:]})
    skeleton, params = _scan(spec, first=2, names=later_names, prop=False)
    ctes = [f"sk AS ({skeleton})", *_levels(spec, "sk", lowest=2, strict=False)]
    step_one, step_one_params = step_predicate(spec.steps[0])
    prop, prop_params = _breakdown_value(spec)
    user = 'e.user_id COLLATE "C"' if _pg() else "e.user_id"
    ctes.append(
        f"starts AS (SELECT {user} AS u, e.id AS id, {_micros('e.timestamp')} AS t, {prop} AS prop "
        "FROM events_event e WHERE e.project_id = %s AND e.timestamp >= %s AND e.timestamp < %s "
        f"AND {step_one}{spec.users})"
    )
    params += [*prop_params, spec.project_id, ts(spec.start), ts(spec.end), *step_one_params]
    # one row per start (st = 1) and per step-2 skeleton row; an event that is both comes
    # twice, and its start copy sorts after its skeleton copy so it cannot follow itself
    later = [f"b{K}_2" for K in range(2, n + 1)]
    nulls = ", ".join(f"NULL AS b{K}_2" for K in range(2, n + 1))
    ctes.append(
        f"joined AS (SELECT u, id, t, 0 AS st, NULL AS prop, {', '.join(later)} FROM lv2 WHERE m2 = 1 "
        f"UNION ALL SELECT u, id, t, 1 AS st, prop, {nulls} FROM starts)"
    )
    gap = spec.steps[1].get("timeWindow")
    columns = [f"CASE WHEN st = 1 THEN {_after(f'b{K}_2', False, gap)} END AS b{K}_1" for K in range(2, n + 1)]
    # packed once per row here, not once per aggregate below
    columns.append(f"CASE WHEN st = 1 THEN {_pack('t', 'id', 'prop')} END AS packed")
    ctes.append(f"lv1 AS (SELECT joined.*, {', '.join(columns)} FROM joined WINDOW {_frames(False, gap, tie='st')})")
    first = "packed" if spec.breakdown is not None else "t"
    reach = [f"min(CASE WHEN st = 1 THEN {first} END) AS w1"]
    reach += [f"min(CASE WHEN b{K}_1 <= t + {w} THEN packed END) AS w{K}" for K in range(2, n + 1)]
    w1 = "w1" if spec.breakdown is not None else _pack("w1", "0", "NULL")
    win = "COALESCE(" + ", ".join([*(f"w{K}" for K in range(n, 1, -1)), w1]) + ")"
    reached = "CASE " + " ".join(f"WHEN w{K} IS NOT NULL THEN {K}" for K in range(n, 1, -1)) + " ELSE 1 END"
    ctes += [
        f"agg AS (SELECT u, {', '.join(reach)} FROM lv1 GROUP BY u HAVING max(st) = 1)",
        f"res AS (SELECT u, {win} AS win, {reached} AS reached FROM agg)",
        f"cj AS (SELECT lv2.*, res.reached, res.win, {_win_columns('res.win')} FROM lv2 JOIN res ON res.u = lv2.u "
        "WHERE res.reached >= 2)",
        f"ck AS (SELECT cj.*, {_chosen(n)} FROM cj)",
    ]
    empty = ", ".join(["NULL"] * (2 * (n - 1)))
    sql = (
        "WITH " + ", ".join(ctes) + " SELECT u, 1 AS rn, reached, win, 0 AS is_cand, NULL AS t, NULL AS id, 0 AS gi, "
        f"{empty} FROM res UNION ALL SELECT {OUTPUT}, {_outputs(n)} FROM "
        f"(SELECT ck.*, 0 AS rn, 1 AS is_cand, 0 AS gi FROM ck) c WHERE {_candidate(n, w)}"
    )
    return FunnelSQL(sql, params)


def _strict_sql(spec: Spec) -> FunnelSQL:
    """Strict funnels: every event of the user in the span can break an attempt, so all of
    them are read and the dynamic programming runs over all of them, down to step 1."""
    n, w = spec.n, spec.w
    raw, params = _scan(spec, first=1, names=None)
    # the rank of each distinct timestamp among all of the user's events in the span: two
    # steps are consecutive when their ranks are equal or adjacent
    ctes = [
        f"raw AS ({raw})",
        "grp AS (SELECT raw.*, dense_rank() OVER (PARTITION BY u ORDER BY t) AS gi, "
        "CASE WHEN m1 = 1 AND t >= %s AND t < %s THEN 1 ELSE 0 END AS st FROM raw)",
    ]
    params += [to_micros(spec.start), to_micros(spec.end)]
    ctes += _levels(spec, "grp", lowest=1, strict=True)
    packed = _pack("t", "id", "prop")
    reach = [f"min(CASE WHEN st = 1 THEN {packed} END) OVER whole AS w1"]
    for K in range(2, n + 1):
        reach.append(f"min(CASE WHEN st = 1 AND b{K}_1 <= t + {w} THEN {packed} END) OVER whole AS w{K}")
    win = "COALESCE(" + ", ".join(f"w{K}" for K in range(n, 0, -1)) + ")"
    reached = "CASE " + " ".join(f"WHEN w{K} IS NOT NULL THEN {K}" for K in range(n, 0, -1)) + " ELSE 0 END"
    ctes += [
        f"fin AS (SELECT lv1.*, {', '.join(reach)}, row_number() OVER (PARTITION BY u ORDER BY t DESC, id DESC) AS rn "
        "FROM lv1 WINDOW whole AS (PARTITION BY u))",
        f"res AS (SELECT fin.*, {win} AS win, {reached} AS reached, {_win_columns(win)} FROM fin)",
        f"sel AS (SELECT res.*, {_chosen(n)} FROM res)",
    ]
    sql = (
        "WITH " + ", ".join(ctes) + f" SELECT {OUTPUT}, {_outputs(n)} FROM "
        f"(SELECT sel.*, CASE WHEN {_candidate(n, w)} THEN 1 ELSE 0 END AS is_cand FROM sel) x "
        "WHERE rn = 1 OR is_cand = 1"
    )
    return FunnelSQL(sql, params)


def _frames(strict: bool, gap: int | None, *, tie: str | None = None) -> str:
    """The windows `_after` reads; `tie` orders rows with the same (t, id) (see _skeleton_sql)."""
    order = f"id DESC, {tie} DESC" if tie else "id DESC"
    if not strict and gap is None:
        return f"later AS (PARTITION BY u ORDER BY t DESC, {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    frames = [f"same AS (PARTITION BY u, t ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"]
    if strict:
        frames.append("nxt AS (PARTITION BY u ORDER BY gi DESC RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING)")
    else:
        frames.append(
            f"near AS (PARTITION BY u ORDER BY t DESC RANGE BETWEEN {int(gap) * US} PRECEDING AND 1 PRECEDING)"
        )
    return ", ".join(frames)


def _after(column: str, strict: bool, gap: int | None) -> str:
    """min(column) over the rows that may fill the next step after this one: later in (t, id)
    order; within `gap` seconds when the step has a timeWindow; in strict order, at the same
    timestamp or the user's next one."""
    if strict:
        next_group = f"min({column}) OVER nxt"
        if gap is not None:
            next_group = f"CASE WHEN max(t) OVER nxt - t <= {int(gap) * US} THEN {next_group} END"
        return _lesser(f"min({column}) OVER same", next_group)
    if gap is not None:
        return _lesser(f"min({column}) OVER same", f"min({column}) OVER near")
    return f"min({column}) OVER later"


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)
