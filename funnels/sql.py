"""The funnel statement in the column engine's SQL (DuckDB), composed per funnel from small
named fragments with named parameters ($p0, $p1, ...). funnels/queries.py describes the
algorithm; this module writes it.

Rows carry `h` (the user key, HASHED_KEY below), `u` (user_id), `id` (the tie-break for
equal timestamps), `t` (µs since the epoch), `k` ((t, id) as one HUGEINT, the order of the
ASOF joins) and `m{k}`: the row can fill step k (event name and property filters). The
dynamic programming's `b{K}_{k}` is the earliest time steps k..K can be completed when this
row fills step k (NULL when they cannot).

Properties are JSON text: a filter reads the property's JSON value once
(`json_extract(properties, <JSON Pointer>)`, so any key is exact, quotes, dots and slashes
included) and compares it by JSON type as the reference does: numbers only with numbers
(integers exactly, as HUGEINT; otherwise as doubles), strings only with strings, booleans and
null only with themselves, arrays and objects member by member (so 1 == 1.0 at any depth).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Users are partitioned by a 64-bit hash of user_id: the engine sorts, partitions and groups
# integers about twice as fast as strings. Two users with one hash would share a timeline,
# so every statement also reports whether a hash covered two user_ids (`collided`); the
# runner then runs it again keyed by user_id itself (EXACT_KEY).
HASHED_KEY = "hash(e.user_id)"
EXACT_KEY = "e.user_id"


class Params:
    """A statement's named parameters, collected while it is composed."""

    def __init__(self):
        self.values: dict[str, object] = {}

    def __call__(self, value) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


# ------------------------------------------------------------------ property predicates


def json_pointer(*keys) -> str:
    """RFC 6901: '/'-separated object keys or array indexes, '~' and '/' escaped."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in keys)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare_number(json: str, op: str, number, q: Params) -> str:
    """`json` (a JSON value, NULL when absent) <op> number; FALSE unless `json` is a number.
    An integer compares exactly with JSON integers (json_type UBIGINT/BIGINT; longer ones
    are read as DOUBLE), as a double otherwise."""
    value = q(number)
    kind = f"json_type({json})"
    if isinstance(number, int):
        return (
            f"(CASE {kind} WHEN 'UBIGINT' THEN TRY_CAST({json} AS HUGEINT) {op} {value} "
            f"WHEN 'BIGINT' THEN TRY_CAST({json} AS HUGEINT) {op} {value} "
            f"WHEN 'DOUBLE' THEN TRY_CAST({json} AS DOUBLE) {op} {value} ELSE FALSE END)"
        )
    number = f"{kind} IN ('UBIGINT', 'BIGINT', 'DOUBLE')"
    return f"(CASE WHEN {number} THEN TRY_CAST({json} AS DOUBLE) {op} {value} ELSE FALSE END)"


def _equals(json: str, value, q: Params) -> str:
    """JSON equality of `json` with `value` (1 == 1.0, "1" != 1, true != 1; API.md, "Funnels");
    NULL or FALSE when it does not hold."""
    if isinstance(value, bool):
        return f"({json} = {'true' if value else 'false'!r})"
    if value is None:
        return f"({json} = 'null')"
    if _is_number(value):
        return _compare_number(json, "=", value, q)
    if isinstance(value, str):
        return f"(json_type({json}) = 'VARCHAR' AND ({json} ->> '$') = {q(value)})"
    if isinstance(value, list):
        parts = [f"json_type({json}) = 'ARRAY'", f"json_array_length({json}) = {q(len(value))}"]
        parts += [_equals(f"json_extract({json}, {q(json_pointer(i))})", item, q) for i, item in enumerate(value)]
    else:  # an object: as many keys, each equal (stored objects have no repeated keys)
        parts = [f"json_type({json}) = 'OBJECT'", f"len(json_keys({json})) = {q(len(value))}"]
        parts += [_equals(f"json_extract({json}, {q(json_pointer(key))})", item, q) for key, item in value.items()]
    return "(" + " AND ".join(parts) + ")"


COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def filter_predicate(json: str, spec, q: Params) -> str:
    """One step filter (validated by funnels.serializers) on the property's JSON value `json`
    (NULL when the event lacks it); NULL counts as FALSE."""
    if not isinstance(spec, dict):
        spec = {"op": "eq", "value": spec}
    op, value = spec["op"], spec.get("value")
    if op == "eq":
        return _equals(json, value, q)
    if op == "neq":  # also true when the property is absent
        return f"NOT COALESCE({_equals(json, value, q)}, FALSE)"
    if op == "in":
        return "(" + " OR ".join(_equals(json, item, q) for item in value) + ")" if value else "FALSE"
    if op == "exists":  # present and not null
        present = f"COALESCE({json} <> 'null', FALSE)"
        return present if value else f"NOT {present}"
    if op == "contains":  # a case-sensitive substring of a string
        return f"(json_type({json}) = 'VARCHAR' AND contains({json} ->> '$', {q(value)}))"
    return _compare_number(json, COMPARISONS[op], value, q)


class Properties:
    """`json_extract(e.properties, <pointer>)` per property name, one parameter each, so an
    expression used twice is the same expression (the engine computes it once)."""

    def __init__(self, q: Params):
        self.q = q
        self.pointers: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        if key not in self.pointers:
            self.pointers[key] = self.q(json_pointer(key))
        return f"json_extract(e.properties, {self.pointers[key]})"


def step_predicate(step: dict, q: Params, props: Properties) -> str:
    """Whether event `e` can fill the step: its name, then (only for that name) its filters."""
    name = f"e.event_name = {q(step['eventName'])}"
    filters = [filter_predicate(props(key), spec, q) for key, spec in (step.get("filters") or {}).items()]
    if not filters:
        return name
    return f"(CASE WHEN {name} THEN COALESCE({' AND '.join(filters)}, FALSE) ELSE FALSE END)"


# ------------------------------------------------------------------ the statement


@dataclass(frozen=True)
class FunnelSpec:
    steps: list
    window: int  # seconds
    strict: bool
    start: datetime
    end: datetime
    breakdown: str | None

    @property
    def n(self) -> int:
        return len(self.steps)

    def gap(self, k: int) -> int | None:
        """Step k's timeWindow in µs (the most time from step k-1), or None."""
        seconds = self.steps[k - 1].get("timeWindow")
        return None if seconds is None else int(seconds) * US

    @property
    def greedy(self) -> bool:
        """Ordered, no timeWindow: each step takes the next matching event, so a start's
        earliest completion times are its reported path."""
        return not self.strict and all(self.gap(k) is None for k in range(2, self.n + 1))


@dataclass(frozen=True)
class Relations:
    """The snapshot's events: `span` = [start, end + window], `entries` = [start, end)."""

    span: str
    entries: str


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict

    @classmethod
    def of(cls, sql: str, q: Params) -> "Statement":
        """The engine refuses parameters a statement does not use (a property read by an
        `in: []` filter only, say): only those it names are passed."""
        used = set(re.findall(r"\$(p[0-9]+)\b", sql))
        return cls(sql, {name: value for name, value in q.values.items() if name in used})


def winners_ctes(f: FunnelSpec, rel: Relations, q: Params, *, key: str) -> list[str]:
    """CTEs ending in `winners`: one row per entering user with u, collided (see HASHED_KEY),
    reached (the furthest step), t1..tn (the reported path's times, NULL past `reached`) and
    value (the breakdown property's JSON text on the step-1 event, NULL if absent)."""
    props = Properties(q)
    window = q(f.window * US)
    if f.greedy:
        ctes, candidates = _greedy_entries(f, rel, q, props, key=key), None
    else:
        ctes, candidates = _dp_entries(f, rel, q, props, key=key), "lv2"
    # one row per attempt: how far it gets (completion times are monotone in K, so the
    # number of K completed in time is the furthest), then per user the furthest attempt,
    # the earliest among equals; `(t, id)` is unique, so the later fields never decide
    reached = " + ".join(["1", *(f"COALESCE(b{K}_1 <= t + {window}, FALSE)::INTEGER" for K in range(2, f.n + 1))])
    fields = ", ".join(
        [
            "rank := -reached",
            "t := t",
            "id := id",
            "gi := gi",
            *(f"b{K} := b{K}_1" for K in range(2, f.n + 1)),
        ]
    )
    ctes.append(
        f"attempts AS (SELECT h, u, collided, struct_pack({fields}) AS attempt "
        f"FROM (SELECT entries.*, {reached} AS reached FROM entries))"
    )
    # the skeleton's users are compared too, unless `collided` covers them already (strict:
    # every row read; the greedy chain: every match)
    others = "" if f.strict or f.greedy else " UNION ALL SELECT h, u, FALSE, NULL FROM sk"
    ctes.append(
        "best AS (SELECT h, min(u) AS u, min(u) <> max(u) OR bool_or(collided) AS collided, min(attempt) AS win "
        f"FROM (SELECT h, u, collided, attempt FROM attempts{others}) GROUP BY h HAVING count(attempt) > 0)"
    )
    # the breakdown value is read for the winning starts only, by id (unique in the mirror)
    value = "NULL::VARCHAR AS value"
    source = "best"
    if f.breakdown is not None:
        value = f"CAST({props(f.breakdown)} AS VARCHAR) AS value"
        source = (
            f"best LEFT JOIN (SELECT e.id, e.properties FROM {rel.entries} e "
            f"WHERE e.event_name = {q(f.steps[0]['eventName'])}) e ON e.id = best.win.id"
        )
    columns = ["h", "u", "collided", "-win.rank AS reached", "win.t AS t1", "win.id AS id1", "win.gi AS gi1", value]
    if candidates is None:  # the earliest completions are the path
        columns += [f"CASE WHEN -win.rank >= {k} THEN win.b{k} END AS t{k}" for k in range(2, f.n + 1)]
        ctes.append(f"winners AS (SELECT {', '.join(columns)} FROM {source})")
    else:
        ctes.append(f"w1 AS (SELECT {', '.join(columns)} FROM {source})")
        ctes += _walk(f, candidates, window)
        ctes.append(f"winners AS (SELECT * FROM w{f.n})")
    return ctes


ORDER_KEY = "(epoch_us(e.ts)::HUGEINT << 64) + e.id"  # (t, id) as one value, for ASOF joins


def _skeleton(f: FunnelSpec, rel: Relations, q: Params, props: Properties, *, key: str) -> str:
    """`sk`: the rows of the span that can fill steps 2..n (typically few)."""
    names = ", ".join(q(name) for name in sorted({step["eventName"] for step in f.steps[1:]}))
    flags = ", ".join(f"{step_predicate(f.steps[k - 1], q, props)} AS m{k}" for k in range(2, f.n + 1))
    return (
        f"sk AS (SELECT * FROM (SELECT {key} AS h, e.user_id AS u, e.id, epoch_us(e.ts) AS t, {ORDER_KEY} AS k, "
        f"NULL::BIGINT AS gi, FALSE AS collided, {flags} FROM {rel.span} e WHERE e.event_name IN ({names})) "
        f"WHERE {_any_later_step(f)})"
    )


def _any_later_step(f: FunnelSpec) -> str:
    return " OR ".join(f"m{k}" for k in range(2, f.n + 1))


def _starts(f: FunnelSpec, rel: Relations, q: Params, props: Properties, *, key: str) -> str:
    """`starts`: the step-1 rows of the range, each an attempt."""
    name = q(f.steps[0]["eventName"])
    return (
        f"starts AS (SELECT {key} AS h, e.user_id AS u, e.id, epoch_us(e.ts) AS t, {ORDER_KEY} AS k, "
        f"NULL::BIGINT AS gi, FALSE AS collided FROM {rel.entries} e "
        f"WHERE e.event_name = {name} AND {step_predicate(f.steps[0], q, props)})"
    )


def _carried(f: FunnelSpec) -> str:
    """The starts as they go through the level-1 ASOF join: few bytes to sort (t and id come
    back from k)."""
    return "SELECT h, u, k, t, gi, collided FROM starts" if f.strict else "SELECT h, u, k FROM starts"


def _start_columns(f: FunnelSpec) -> str:
    """`entries`' columns of the start `s` (see _carried)."""
    columns = "s.h, s.u, (s.k >> 64)::BIGINT AS t, (s.k & 18446744073709551615)::BIGINT AS id"
    return f"{columns}, {'s.gi, s.collided' if f.strict else 'NULL::BIGINT AS gi, FALSE AS collided'}"


def _greedy_entries(f: FunnelSpec, rel: Relations, q: Params, props: Properties, *, key: str) -> list[str]:
    """Ordered funnels without timeWindows: the earliest completions from a row that fills
    step k are its own time and those of the first row after it (in (t, id) order, strictly:
    one event fills one step) that fills step k+1. So, from the last step back, each step's
    rows take the next step's first following row by an ASOF join on `k` = (t, id), and each
    start takes the first following step-2 row's: `entries` has one row per start.

    `collided` here: some match of the start's chain is another user's row, which is how a
    shared `h` would show (when every match is the same user's, it is also that user's
    first: nothing comes between); `best` compares the starts' users."""
    n = f.n
    ctes = [
        _skeleton(f, rel, q, props, key=key),
        f"l{n} AS (SELECT h, u, k, t AS b{n}, FALSE AS crossed FROM sk WHERE m{n})",
    ]
    for k in range(n - 1, 1, -1):
        later = ", ".join(f"l.b{K}" for K in range(k + 1, n + 1))
        ctes.append(
            f"l{k} AS (SELECT s.h, s.u, s.k, s.t AS b{k}, {later}, {_crossed()} AS crossed "
            f"FROM (SELECT * FROM sk WHERE m{k}) s ASOF LEFT JOIN l{k + 1} l ON s.h = l.h AND l.k > s.k)"
        )
    chain = ", ".join(f"l.b{K} AS b{K}_1" for K in range(2, n + 1))
    starts = "s.h, s.u, (s.k >> 64)::BIGINT AS t, (s.k & 18446744073709551615)::BIGINT AS id, NULL::BIGINT AS gi"
    ctes += [
        _starts(f, rel, q, props, key=key),
        f"entries AS (SELECT {starts}, {_crossed()} AS collided, {chain} FROM (SELECT h, u, k FROM starts) s "
        "ASOF LEFT JOIN l2 l ON s.h = l.h AND l.k > s.k)",
    ]
    return ctes


def _crossed() -> str:
    return "COALESCE(l.u <> s.u OR l.crossed, FALSE)"


def _dp_entries(f: FunnelSpec, rel: Relations, q: Params, props: Properties, *, key: str) -> list[str]:
    """Funnels with timeWindows or in strict order: the dynamic programming. Levels n..2 run
    on the skeleton; then level 1 for the many starts (`entries`: one row per start). A
    strict funnel first ranks the distinct timestamps of all of the user's events in the
    span (`gi`: two steps are consecutive when their ranks are equal or adjacent), since
    any event breaks an attempt."""
    ctes = _ranked(f, rel, q, props, key=key) if f.strict else [_skeleton(f, rel, q, props, key=key)]
    ctes += _levels(f, "sk", lowest=2, strict=f.strict)
    if not f.strict:
        ctes.append(_starts(f, rel, q, props, key=key))
    if f.strict or f.gap(2) is None:
        return [*ctes, *_level_one_by_asof(f)]
    # step 2's timeWindow: the starts sort with the step-2 rows for one window pass. An
    # event that is both comes twice; its start copy sorts after its step-2 copy, so it
    # cannot follow itself
    later = ", ".join(f"b{K}_2" for K in range(2, f.n + 1))
    nulls = ", ".join(f"NULL::BIGINT AS b{K}_2" for K in range(2, f.n + 1))
    columns = ", ".join(
        f"CASE WHEN st THEN {_after(f'b{K}_2', strict=False, gap=f.gap(2))} END AS b{K}_1" for K in range(2, f.n + 1)
    )
    return [
        *ctes,
        f"joined AS (SELECT h, u, id, t, gi, collided, FALSE AS st, {later} FROM lv2 "
        f"WHERE m2 UNION ALL SELECT h, u, id, t, gi, collided, TRUE, {nulls} FROM starts)",
        f"lv1 AS (SELECT joined.*, {columns} FROM joined WINDOW {_frames(strict=False, gap=f.gap(2), tie='st')})",
        "entries AS (SELECT * FROM lv1 WHERE st)",
    ]


def _level_one_by_asof(f: FunnelSpec) -> list[str]:
    """Level 1 without a window pass over the starts, when step 2 has no timeWindow or the
    funnel is strict: the step-2 rows a start may take next begin at the first one after it
    (`e0`, an ASOF join), so minimums precomputed on the step-2 rows (few) answer it.
    Ordered: the minimum over e0 and every step-2 row after it. Strict: the step-2 rows of
    e0's own timestamp from e0 on (`own`), and when e0 shares the start's timestamp rank,
    also those of the next rank (`nxt`), within step 2's timeWindow if it has one."""
    n, gap = f.n, f.gap(2)
    if not f.strict:
        rest = ", ".join(f"min(b{K}_2) OVER rest AS rest{K}" for K in range(2, n + 1))
        firsts = (
            f"firsts AS (SELECT h, k, {rest} FROM lv2 WHERE m2 WINDOW rest AS (PARTITION BY h "
            "ORDER BY t DESC, id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))"
        )
        values = ", ".join(f"l.rest{K} AS b{K}_1" for K in range(2, n + 1))
    else:
        own = ", ".join(f"min(b{K}_2) OVER own AS own{K}" for K in range(2, n + 1))
        nxt = ", ".join(f"min(b{K}_2) OVER nxt AS nxt{K}" for K in range(2, n + 1))
        firsts = (
            f"firsts AS (SELECT h, k, t, gi, {own}, {nxt}, max(t) OVER nxt AS nxt_t FROM lv2 WHERE m2 "
            "WINDOW own AS (PARTITION BY h, t ORDER BY id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), "
            "nxt AS (PARTITION BY h ORDER BY gi DESC RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING))"
        )
        next_in_time = "TRUE" if gap is None else f"l.nxt_t - s.t <= {gap}"
        e0_in_time = "TRUE" if gap is None else f"l.t - s.t <= {gap}"
        values = ", ".join(
            f"CASE WHEN l.gi = s.gi THEN least(l.own{K}, CASE WHEN {next_in_time} THEN l.nxt{K} END) "
            f"WHEN l.gi = s.gi + 1 AND {e0_in_time} THEN l.own{K} END AS b{K}_1"
            for K in range(2, n + 1)
        )
    return [
        firsts,
        f"entries AS (SELECT {_start_columns(f)}, {values} FROM ({_carried(f)}) s "
        "ASOF LEFT JOIN firsts l ON s.h = l.h AND l.k > s.k)",
    ]


def _ranked(f: FunnelSpec, rel: Relations, q: Params, props: Properties, *, key: str) -> list[str]:
    """Strict funnels' `sk` and `starts`, from every event of the span ranked by timestamp
    per user (`gi`); `collided` is computed over all of them too."""
    start, end = q(to_micros(f.start)), q(to_micros(f.end))
    entry = f"({step_predicate(f.steps[0], q, props)} AND epoch_us(e.ts) >= {start} AND epoch_us(e.ts) < {end})"
    flags = ", ".join(f"{step_predicate(f.steps[k - 1], q, props)} AS m{k}" for k in range(2, f.n + 1))
    return [
        f"ranked AS (SELECT * FROM (SELECT *, dense_rank() OVER (PARTITION BY h ORDER BY t) AS gi, "
        "min(u) OVER users <> max(u) OVER users AS collided "
        f"FROM (SELECT {key} AS h, e.user_id AS u, e.id, epoch_us(e.ts) AS t, {ORDER_KEY} AS k, {entry} AS st, "
        f"{flags} FROM {rel.span} e) "
        f"WINDOW users AS (PARTITION BY h)) WHERE st OR {_any_later_step(f)})",
        f"sk AS (SELECT * FROM ranked WHERE {_any_later_step(f)})",
        "starts AS (SELECT * FROM ranked WHERE st)",
    ]


def _levels(f: FunnelSpec, source: str, *, lowest: int, strict: bool) -> list[str]:
    """CTEs lv{n} .. lv{lowest} over `source`: b{K}_{k} from the rows that may follow."""
    n = f.n
    ctes = [f"lv{n} AS (SELECT {source}.*, CASE WHEN m{n} THEN t END AS b{n}_{n} FROM {source})"]
    for k in range(n - 1, lowest - 1, -1):
        gap = f.gap(k + 1)  # the constraint between step k and step k+1
        fills = "st" if k == 1 else f"m{k}"
        columns = [
            f"CASE WHEN {fills} THEN {_after(f'b{K}_{k + 1}', strict=strict, gap=gap)} END AS b{K}_{k}"
            for K in range(k + 1, n + 1)
        ]
        if k >= 2:
            columns.append(f"CASE WHEN m{k} THEN t END AS b{k}_{k}")
        frames = _frames(strict=strict, gap=gap)
        ctes.append(f"lv{k} AS (SELECT lv{k + 1}.*, {', '.join(columns)} FROM lv{k + 1} WINDOW {frames})")
    return ctes


def _frames(*, strict: bool, gap: int | None, tie: str | None = None) -> str:
    """The windows `_after` reads; `tie` orders rows with the same (t, id) (see joined)."""
    order = f"id DESC, {tie} DESC" if tie else "id DESC"
    if not strict and gap is None:
        return f"later AS (PARTITION BY h ORDER BY t DESC, {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    frames = [f"same AS (PARTITION BY h, t ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"]
    if strict:
        frames.append("nxt AS (PARTITION BY h ORDER BY gi DESC RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING)")
    else:
        frames.append(f"near AS (PARTITION BY h ORDER BY t DESC RANGE BETWEEN {int(gap)} PRECEDING AND 1 PRECEDING)")
    return ", ".join(frames)


def _after(column: str, *, strict: bool, gap: int | None) -> str:
    """min(column) over the rows that may fill the next step after this one: later in (t, id)
    order; within `gap` µs when the step has a timeWindow; in strict order, at the same
    timestamp or the user's next one. (`least` skips NULLs.)"""
    if strict:
        next_group = f"min({column}) OVER nxt"
        if gap is not None:
            next_group = f"CASE WHEN max(t) OVER nxt - t <= {int(gap)} THEN {next_group} END"
        return f"least(min({column}) OVER same, {next_group})"
    if gap is not None:
        return f"least(min({column}) OVER same, min({column}) OVER near)"
    return f"min({column}) OVER later"


def _walk(f: FunnelSpec, source: str, window: str) -> list[str]:
    """The reported path of each winning attempt (start t1, furthest step `reached`), one
    step per CTE: step k takes the first row after step k-1 that may fill it (its
    timeWindow; in strict order, at the same timestamp rank or the next) and from which
    `reached` can still be completed in time (`c{k}`: b{reached}_{k} <= t1 + window)."""
    n = f.n
    chosen = ", ".join(
        "CASE w.reached " + " ".join(f"WHEN {K} THEN c.b{K}_{k}" for K in range(k, n + 1)) + f" END AS c{k}"
        for k in range(2, n + 1)
    )
    ctes = [
        f"cand AS (SELECT c.*, {chosen} FROM {source} c JOIN w1 w ON w.h = c.h "
        f"WHERE w.reached >= 2 AND c.t >= w.t1 AND c.t <= w.t1 + {window})"
    ]
    for k in range(2, n + 1):
        prev = k - 1
        conditions = [
            f"w.reached >= {k}",
            f"c.m{k}",
            f"c.c{k} <= w.t1 + {window}",
            f"(c.t > w.t{prev} OR (c.t = w.t{prev} AND c.id > w.id{prev}))",
        ]
        gap = f.gap(k)
        if gap is not None:
            conditions.append(f"c.t - w.t{prev} <= {gap}")
        if f.strict:
            conditions.append(f"c.gi <= w.gi{prev} + 1")
        ctes.append(
            f"w{k} AS (SELECT w.*, s.step.t AS t{k}, s.step.id AS id{k}, s.step.gi AS gi{k} FROM w{prev} w "
            f"LEFT JOIN (SELECT w.h, min(struct_pack(t := c.t, id := c.id, gi := c.gi)) AS step FROM w{prev} w "
            f"JOIN cand c ON c.h = w.h WHERE {' AND '.join(conditions)} GROUP BY w.h) s ON s.h = w.h)"
        )
    return ctes


def outcomes_statement(f: FunnelSpec, rel: Relations, *, key: str) -> Statement:
    """Per entering user: collided, u, reached, value, t1..tn."""
    q = Params()
    ctes = winners_ctes(f, rel, q, key=key)
    times = ", ".join(f"t{k}" for k in range(1, f.n + 1))
    return Statement.of(f"WITH {', '.join(ctes)} SELECT collided, u, reached, value, {times} FROM winners", q)


TOP_BREAKDOWN = 10


def table_statement(f: FunnelSpec, rel: Relations, *, key: str) -> Statement:
    """The per-step figures: one row for all entrants (`grp` NULL) and, with a breakdown, one
    per group: the TOP_BREAKDOWN values with the most entrants (ties: by value, absent
    last), numbered 1.., and the rest as group TOP_BREAKDOWN + 1. Columns: collided, grp,
    value, then per step k users{k} and, from step 2, the sum (µs) and median (µs) of
    the time from step k-1 over the users who reached k."""
    q = Params()
    ctes = winners_ctes(f, rel, q, key=key)
    figures = []
    for k in range(1, f.n + 1):
        reached = f"FILTER (WHERE reached >= {k})"
        figures.append(f"count(*) {reached}")
        if k >= 2:
            gap = f"t{k} - t{k - 1}"
            figures += [f"sum(({gap})::HUGEINT) {reached}", f"median({gap}) {reached}"]
    columns = ", ".join(figures)
    if f.breakdown is None:
        sql = f"SELECT bool_or(collided), NULL AS grp, NULL AS value, {columns} FROM winners"
    else:
        ctes.append(
            "value_ranks AS (SELECT value, row_number() OVER (ORDER BY count(*) DESC, value IS NULL, value) AS rank "
            "FROM winners GROUP BY value)"
        )
        top = q(TOP_BREAKDOWN)
        sql = (
            f"SELECT bool_or(collided), CASE WHEN GROUPING(grp) = 0 THEN grp END AS grp, "
            f"CASE WHEN GROUPING(grp) = 0 AND grp <= {top} THEN any_value(value) END, {columns} "
            f"FROM (SELECT w.*, least(r.rank, {top} + 1) AS grp FROM winners w "
            "JOIN value_ranks r ON r.value IS NOT DISTINCT FROM w.value) "
            "GROUP BY GROUPING SETS ((), (grp)) ORDER BY 2 NULLS FIRST"
        )
    return Statement.of(f"WITH {', '.join(ctes)} {sql}", q)
