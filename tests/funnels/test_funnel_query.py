"""The funnel runner (funnels/queries.py) against the brute-force reference (tests/reference.py)
on generated data and on the hand-written cases of test_reference.py, on the configured
database (SQLite by default, PostgreSQL in CI)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from funnels.queries import FunnelParams, _parallelism, outcomes, step_table
from funnels.serializers import validate_steps
from funnels.sql import EPOCH
from tests import reference
from tests.funnels import test_reference as hand
from tests.helpers import store_events

BASE = datetime(2024, 3, 9, tzinfo=UTC)


def run_both(project, events, steps, *, window, order="ordered", start, end):
    """Stores `events` (reference dicts, in order), runs runner and reference, asserts they agree."""
    store_events(project, [(e["user"], e["name"], e["ts"], e["properties"]) for e in events])
    steps = validate_steps(steps)
    params = FunnelParams(1, "f", steps, window, order, start, end)
    mine = outcomes(project_id=project.id, p=params)
    expected = reference.funnel(events, steps, window=window, order=order, start=start, end=end)
    got_paths = {user: [EPOCH + timedelta(microseconds=t) for t in o.times] for user, o in mine.items()}
    assert got_paths == expected["best"]
    table = step_table(steps, mine.values())
    for got, want in zip(table, expected["steps"], strict=True):
        assert got == pytest.approx(want)
    return table


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(hand.CASES))
def test_the_hand_written_semantics_cases(project, case):
    events, steps, *rest = hand.CASES[case]
    window = rest[0] if rest else hand.DAY
    order = rest[1] if len(rest) > 1 else "ordered"
    run_both(project, events, steps, window=window, order=order, start=hand.START, end=hand.END)


@pytest.mark.django_db
@pytest.mark.parametrize("spec,properties,matches", hand.FILTER_CASES)
def test_every_filter_operator_matches_like_the_reference(project, spec, properties, matches):
    events = [hand.ev("u", "a", 0, **properties), hand.ev("u", "b", 1, **properties)]
    steps = [{"eventName": "a"}, {"eventName": "b", "filters": {"p": spec}}]
    table = run_both(project, events, steps, window=hand.DAY, start=hand.START, end=hand.END)
    assert table[1]["users"] == (1 if matches else 0)


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
def test_generated_funnels_match_the_reference(project, seed):
    rng = random.Random(seed)
    events = generate(rng)
    steps = random_steps(rng)
    window = 600 * rng.choice([1, 3, 6, 36, 144])
    order = "strict" if seed % 3 == 0 else "ordered"
    start = BASE + timedelta(hours=rng.choice([0, 6, 12]))
    end = start + timedelta(hours=rng.choice([12, 24, 48]))
    run_both(project, events, steps, window=window, order=order, start=start, end=end)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_users_split_over_parallel_connections_give_the_same_answer(postgres, project, settings, seed):
    """Outside a transaction PostgreSQL computes the funnel in FUNNEL_PARALLELISM parts."""
    settings.FUNNEL_PARALLELISM = 2
    assert _parallelism() == 2
    rng = random.Random(seed)
    events = generate(rng, users=40)
    window = 600 * rng.choice([6, 36, 144])
    order = "strict" if seed % 2 else "ordered"
    start, end = BASE + timedelta(hours=6), BASE + timedelta(hours=30)
    run_both(project, events, random_steps(rng), window=window, order=order, start=start, end=end)
