"""The funnel runner (funnels/queries.py) against the brute-force reference (tests/reference.py)
on generated data and on the hand-written cases of test_reference.py, reading the stored
events in each of the mirror's three states (the not-yet-exported tail, half files and half
tail, compacted files) on the configured database (SQLite by default, PostgreSQL in CI)."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from funnels.models import Funnel
from funnels.queries import FunnelParams, FunnelQuery, outcomes
from funnels.serializers import validate_steps
from funnels.sql import EPOCH
from tests import reference
from tests.funnels import test_reference as hand
from tests.helpers import store_events

BASE = datetime(2024, 3, 9, tzinfo=UTC)


def answer(project, steps, *, window, order, start, end, breakdown=None) -> dict:
    """FunnelQuery's answer for [start, end) (a datetime endDate is inclusive)."""
    funnel = Funnel.objects.create(project=project, name="f", steps=steps, conversion_window=window, order=order)
    last = end - timedelta(microseconds=1)
    params = {"funnelId": funnel.id, "startDate": start.isoformat(), "endDate": last.isoformat()}
    if breakdown:
        params["breakdown"] = breakdown
    return FunnelQuery(project=project, params=params).calculate()


ABSENT = object()


def check_breakdown(project, events, steps, *, window, order, start, end, key):
    """The breakdown by `key` against the reference run on each group's users. A user's
    group is the JSON value of `key` on their winning step-1 event: the first stored one at
    their entry time (a later one at the same instant can never get further)."""
    best = reference.funnel(events, steps, window=window, order=order, start=start, end=end)["best"]
    group_of = {}
    for e in events:
        if e["user"] in best and e["user"] not in group_of and e["ts"] == best[e["user"]][0]:
            if _is_step_one(e, steps[0]):
                group_of[e["user"]] = e["properties"].get(key, ABSENT)
    members: dict[str, list[str]] = {}
    for user, value in group_of.items():
        members.setdefault("" if value is ABSENT else json.dumps(value), []).append(user)
    ranked = sorted(members, key=lambda text: (-len(members[text]), text == "", text))
    body = answer(project, steps, window=window, order=order, start=start, end=end, breakdown=key)
    shown = [None if text == "" else json.loads(text) for text in ranked[:10]] + (["Other"] if ranked[10:] else [])
    assert [group["value"] for group in body["breakdown"]] == shown
    for group, texts in zip(body["breakdown"], [[text] for text in ranked[:10]] + [ranked[10:]], strict=False):
        users = {user for text in texts for user in members[text]}
        want = reference.funnel(
            [e for e in events if e["user"] in users], steps, window=window, order=order, start=start, end=end
        )
        for got, expected in zip(group["steps"], want["steps"], strict=True):
            assert got == pytest.approx(expected)


def _is_step_one(event, step) -> bool:
    return event["name"] == step["eventName"] and all(
        reference.filter_matches(event["properties"], prop, spec) for prop, spec in (step.get("filters") or {}).items()
    )


def run_both(project, mirror, events, steps, *, window, order="ordered", start, end, breakdown=None):
    """Stores `events` (reference dicts, in order), puts them in the mirror's state, runs the
    runner and the reference and asserts they agree: every user's reported path, and the
    per-step figures (and, with `breakdown`, each group's)."""
    store_events(project, [(e["user"], e["name"], e["ts"], e["properties"]) for e in events])
    mirror.ready(project)
    steps = validate_steps(steps)
    expected = reference.funnel(events, steps, window=window, order=order, start=start, end=end)
    mine = outcomes(project_id=project.id, p=FunnelParams(1, "f", steps, window, order, start, end))
    got_paths = {user: [EPOCH + timedelta(microseconds=t) for t in o.times] for user, o in mine.items()}
    assert got_paths == expected["best"]
    body = answer(project, steps, window=window, order=order, start=start, end=end)
    for got, want in zip(body["steps"], expected["steps"], strict=True):
        assert got == pytest.approx(want)
    assert body["overallConversionRate"] == pytest.approx(expected["overallConversionRate"])
    if breakdown:
        check_breakdown(project, events, steps, window=window, order=order, start=start, end=end, key=breakdown)
    return body["steps"]


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(hand.CASES))
def test_the_hand_written_semantics_cases(project, mirror, case):
    events, steps, *rest = hand.CASES[case]
    window = rest[0] if rest else hand.DAY
    order = rest[1] if len(rest) > 1 else "ordered"
    run_both(project, mirror, events, steps, window=window, order=order, start=hand.START, end=hand.END)


@pytest.mark.django_db
@pytest.mark.parametrize("spec,properties,matches", hand.FILTER_CASES)
def test_every_filter_operator_matches_like_the_reference(project, mirror, spec, properties, matches):
    events = [hand.ev("u", "a", 0, **properties), hand.ev("u", "b", 1, **properties)]
    steps = [{"eventName": "a"}, {"eventName": "b", "filters": {"p": spec}}]
    table = run_both(project, mirror, events, steps, window=hand.DAY, start=hand.START, end=hand.END)
    assert table[1]["users"] == (1 if matches else 0)


# JSON values of every type, numbers written several ways, nested values, and property names
# a JSON path would have to quote
ODD_VALUES = [
    0,
    1,
    -1,
    1.0,
    2.5,
    -0.0,
    1e16,
    2**53 + 1,
    2**63 - 1,
    2**64 + 1,
    "",
    "1",
    "Pro plan",
    'a "quoted" \\ value',
    "caf\u00e9 \u2603",
    True,
    False,
    None,
    [],
    [1, "a"],
    [1.0, "a"],
    {"x": 1},
    {"y": [2, {"x": None}]},
]
ODD_KEYS = ["p", 'a"b', "x/y", "t~1", "$.z", "a.b", "[0]", "0", "é"]
ODD_FILTERS = [
    *({"op": "eq", "value": v} for v in ODD_VALUES if v != 2**64 + 1),  # filters stop at BIGINT
    *({"op": "neq", "value": v} for v in (1, "1", None, [1, "a"], {"x": 1.0})),
    *({"op": op, "value": v} for op in ("gt", "gte", "lt", "lte") for v in (0, 1, 2.5, 2**53, 2**63 - 1, -1.5)),
    *({"op": "contains", "value": v} for v in ("", "Pro", "pro", '"', "\u2603")),
    {"op": "in", "value": [1, "a", None, [1, "a"]]},
    {"op": "in", "value": []},
    {"op": "exists", "value": True},
    {"op": "exists", "value": False},
    1,
    "Pro plan",
    [1, "a"],
]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ODD_KEYS)
def test_filters_on_values_of_every_json_type_match_the_reference(project, mirror, key):
    """One user per stored value (and one without the property); every filter counts the
    users whose step 2 matches it, as the reference does."""
    events = []
    for i, value in enumerate([*ODD_VALUES, "absent"]):
        properties = {} if value == "absent" else {key: value}
        events += [hand.ev(f"u{i:02d}", "a", 0), hand.ev(f"u{i:02d}", "b", 1, **properties)]
    store_events(project, [(e["user"], e["name"], e["ts"], e["properties"]) for e in events])
    mirror.ready(project)
    for spec in ODD_FILTERS:
        steps = validate_steps([{"eventName": "a"}, {"eventName": "b", "filters": {key: spec}}])
        params = FunnelParams(1, "f", steps, hand.DAY, "ordered", hand.START, hand.END)
        mine = {user for user, o in outcomes(project_id=project.id, p=params).items() if o.reached == 2}
        expected = reference.funnel(events, steps, window=hand.DAY, order="ordered", start=hand.START, end=hand.END)
        assert mine == {user for user, times in expected["best"].items() if len(times) == 2}, spec


NAMES = ["a", "b", "c", "x"]
VALUES = [0, 1, 2, 2.0, 3.5, "1", "pro", "Pro plan", "free", True, False, None]


def _properties(rng):
    props = {}
    for key in ("n", "s"):
        if rng.random() < 0.75:
            props[key] = rng.choice(VALUES)
    return props


def _filter(rng):
    return rng.choice(
        [
            {"n": rng.choice([1, 2, "1", True])},
            {"n": {"op": rng.choice(["gt", "gte", "lt", "lte"]), "value": rng.choice([1, 2, 2.5])}},
            {"n": {"op": "neq", "value": 2}},
            {"s": {"op": "contains", "value": rng.choice(["pro", "Pro", "e"])}},
            {"s": {"op": "in", "value": ["pro", "free", 1]}},
            {"s": {"op": "exists", "value": rng.choice([True, False])}},
        ]
    )


def generate(rng, *, users=12, step=600):
    """Events on a coarse grid (many equal timestamps) over ~3 days around the range."""
    events = []
    for u in range(users):
        for _ in range(rng.randint(0, 24)):
            moment = BASE + timedelta(seconds=step * rng.randint(0, 3 * 86400 // step))
            events.append({"user": f"user{u}", "name": rng.choice(NAMES), "ts": moment, "properties": _properties(rng)})
    rng.shuffle(events)
    return events


def random_steps(rng, *, step=600):
    steps = []
    for number in range(rng.randint(2, 4)):
        item = {"eventName": rng.choice(NAMES[:3])}
        if rng.random() < 0.3:
            item["filters"] = _filter(rng)
        if number and rng.random() < 0.3:
            item["timeWindow"] = step * rng.randint(1, 12)
        steps.append(item)
    return steps


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(80))
def test_generated_funnels_match_the_reference(project, mirror, seed):
    rng = random.Random(seed)
    events = generate(rng)
    steps = random_steps(rng)
    window = 600 * rng.choice([1, 3, 6, 36, 144])
    order = "strict" if seed % 3 == 0 else "ordered"
    start = BASE + timedelta(hours=rng.choice([0, 6, 12]))
    end = start + timedelta(hours=rng.choice([12, 24, 48]))
    run_both(project, mirror, events, steps, window=window, order=order, start=start, end=end, breakdown="s")


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_users_sharing_a_hash_are_computed_apart(project, mirror, monkeypatch, seed):
    """The statement partitions users by a hash of user_id and reruns by user_id itself when
    two users share one (funnels.sql.HASHED_KEY): with a hash of two values, nearly every
    user shares one, and the answer is still the reference's."""
    monkeypatch.setattr("funnels.queries.HASHED_KEY", "(hash(e.user_id) % 2)")
    rng = random.Random(seed)
    events = generate(rng, users=40)
    steps = [{"eventName": "a"}, {"eventName": "b"}, {"eventName": "c"}] if seed < 5 else random_steps(rng)
    window = 600 * rng.choice([6, 36, 144])
    order = "strict" if seed % 2 else "ordered"
    start, end = BASE + timedelta(hours=6), BASE + timedelta(hours=30)
    run_both(project, mirror, events, steps, window=window, order=order, start=start, end=end)
    # without the rerun, the shared timelines would give another answer
    monkeypatch.setattr("funnels.queries.EXACT_KEY", "(hash(e.user_id) % 2)")
    params = FunnelParams(1, "f", validate_steps(steps), window, order, start, end)
    merged = outcomes(project_id=project.id, p=params)
    expected = reference.funnel(events, steps, window=window, order=order, start=start, end=end)
    assert {user: len(o.times) for user, o in merged.items()} != {u: len(t) for u, t in expected["best"].items()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "steps,order",
    [
        (hand.ABC, "ordered"),
        ([{"eventName": "a"}, {"eventName": "b", "timeWindow": 60}, {"eventName": "c"}], "ordered"),
        (hand.ABC, "strict"),
    ],
)
@pytest.mark.parametrize(
    "theirs,users",
    [
        ([hand.ev("q", "b", 10), hand.ev("q", "c", 20)], [2, 0, 0]),  # q has p's next step
        ([hand.ev("p", "b", 10), hand.ev("q", "c", 20)], [2, 1, 0]),  # q has the step after p's next
    ],
)
def test_a_shared_hash_with_a_user_without_entries_is_seen(project, mirror, monkeypatch, steps, order, theirs, users):
    """Only `p` and `r` enter; `q`, sharing p's key, has later steps: merged, p would get further."""
    monkeypatch.setattr("funnels.queries.HASHED_KEY", "(CASE WHEN e.user_id IN ('p', 'q') THEN 0 ELSE 1 END)")
    events = [hand.ev("p", "a", 0), *theirs, hand.ev("r", "a", 0)]
    table = run_both(project, mirror, events, steps, window=hand.DAY, order=order, start=hand.START, end=hand.END)
    assert [step["users"] for step in table] == users
