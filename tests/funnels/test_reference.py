"""Hand-written cases for every funnel semantics bullet of API.md, checked against the
brute-force reference (tests/reference.py). The funnel query runner will be held to the
same cases; until it exists they pin down what the reference means."""

from datetime import UTC, datetime, timedelta

import pytest

from tests import reference

T0 = datetime(2024, 1, 10, 12, tzinfo=UTC)
START, END = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 11, tzinfo=UTC)
ABC = [{"eventName": "a"}, {"eventName": "b"}, {"eventName": "c"}]
DAY = 86400


def ev(user, name, seconds, **properties):
    return {"user": user, "name": name, "ts": T0 + timedelta(seconds=seconds), "properties": properties}


def run(events, steps=ABC, window=DAY, order="ordered"):
    return reference.funnel(events, steps, window=window, order=order, start=START, end=END)


def users(result):
    return [s["users"] for s in result["steps"]]


# Every semantics case as (events, steps[, window[, order]]); the runner is held to them too
# (tests/funnels/test_funnel_query.py).
CASES = {
    "entry": ([ev("in", "a", 0), ev("in", "b", 13 * 3600), ev("out", "a", -13 * 3600), ev("out", "b", 0)], ABC),
    "window": (
        [
            ev("u", "a", 0),
            ev("u", "b", 50),
            ev("u", "c", 100),
            ev("v", "a", 0),
            ev("v", "b", 50),
            ev("v", "c", 101),
        ],
        ABC,
        100,
    ),
    "time_window": (
        [ev("u", "a", 0), ev("u", "b", 60), ev("u", "c", 500), ev("v", "a", 0), ev("v", "b", 61)],
        [{"eventName": "a"}, {"eventName": "b", "timeWindow": 60}, {"eventName": "c"}],
    ),
    "order": ([ev("u", "b", 0), ev("u", "a", 10), ev("s", "a", 5), ev("s", "b", 5), ev("s", "c", 5)], ABC),
    "shared": ([ev("once", "a", 0), ev("twice", "a", 0), ev("twice", "a", 0)], [{"eventName": "a"}] * 2),
    "repeated": (
        [ev("u", "a", 0), ev("u", "a", 5), ev("u", "b", 6), ev("u", "a", 7)],
        [*ABC[:2], {"eventName": "a"}],
    ),
    "strict": (
        [
            *[ev("u", n, s) for n, s in (("a", 0), ("x", 5), ("b", 10))],
            *[ev("t", n, s) for n, s in (("a", 0), ("x", 10), ("b", 10))],
            *[ev("r", n, s * 3600) for n, s in (("a", 11), ("x", 13), ("b", 14))],
        ],
        ABC,
        DAY,
        "strict",
    ),
    "attempts": (
        [ev("u", "a", 0), ev("u", "b", 10), ev("u", "a", 100), ev("u", "b", 110), ev("u", "c", 120)],
        ABC,
        60,
    ),
    "earliest": ([ev("u", "a", 0), ev("u", "b", 30), ev("u", "a", 100), ev("u", "b", 105)], ABC, 60),
    "path": (
        [ev("u", "a", 0), ev("u", "b", 5), ev("u", "b", 50), ev("u", "c", 55)],
        [{"eventName": "a"}, {"eventName": "b"}, {"eventName": "c", "timeWindow": 10}],
    ),
}


def test_entry_must_be_inside_the_range_but_later_steps_may_fall_after_it():
    events, steps = CASES["entry"]
    assert users(run(events, steps)) == [1, 1, 0]


def test_the_window_is_inclusive_and_measured_from_step_one():
    events, steps, window = CASES["window"]
    assert users(run(events, steps, window=window)) == [2, 2, 1]


def test_a_step_time_window_bounds_the_gap_from_the_previous_step_inclusively():
    events, steps = CASES["time_window"]
    assert users(run(events, steps)) == [2, 1, 1]


def test_order_matters_shared_timestamps_are_fine_one_event_fills_one_step():
    events = [ev("u", "b", 0), ev("u", "a", 10)]  # b before a does not count
    assert users(run(events)) == [1, 0, 0]
    same_time = [ev("s", "a", 5), ev("s", "b", 5), ev("s", "c", 5)]
    assert users(run(same_time)) == [1, 1, 1]
    repeated = [{"eventName": "a"}, {"eventName": "a"}]
    assert users(run([ev("once", "a", 0)], repeated)) == [1, 0]
    assert users(run([ev("twice", "a", 0), ev("twice", "a", 0)], repeated)) == [1, 1]


def test_strict_breaks_on_any_other_event_strictly_between_two_steps():
    strict = [ev("u", "a", 0), ev("u", "x", 5), ev("u", "b", 10)]
    assert users(run(strict, order="strict")) == [1, 0, 0]
    assert users(run(strict)) == [1, 1, 0]
    tie = [ev("t", "a", 0), ev("t", "x", 10), ev("t", "b", 10)]  # same timestamp as a step: not between
    assert users(run(tie, order="strict")) == [1, 1, 0]
    after_range = [ev("r", "a", 11 * 3600), ev("r", "x", 13 * 3600), ev("r", "b", 14 * 3600)]
    assert users(run(after_range, order="strict")) == [1, 0, 0]  # events after endDate count


def test_every_step_one_event_starts_an_attempt_and_the_furthest_wins():
    events = [ev("u", "a", 0), ev("u", "b", 10), ev("u", "a", 100), ev("u", "b", 110), ev("u", "c", 120)]
    result = run(events, window=60)
    assert users(result) == [1, 1, 1]
    assert result["best"]["u"] == [T0 + timedelta(seconds=s) for s in (100, 110, 120)]


def test_equally_far_attempts_the_earliest_wins_and_its_timings_are_reported():
    events = [ev("u", "a", 0), ev("u", "b", 30), ev("u", "a", 100), ev("u", "b", 105)]
    result = run(events, window=60)
    assert result["best"]["u"] == [T0, T0 + timedelta(seconds=30)]
    assert result["steps"][1]["avgTimeToConvertSeconds"] == 30.0


def test_inside_an_attempt_the_path_with_the_earliest_step_times_is_reported():
    steps = [{"eventName": "a"}, {"eventName": "b"}, {"eventName": "c", "timeWindow": 10}]
    events = [ev("u", "a", 0), ev("u", "b", 5), ev("u", "b", 50), ev("u", "c", 55)]
    result = run(events, steps)
    # b at 5 cannot reach c within 10 s; the path that reaches step 3 takes b at 50
    assert result["best"]["u"] == [T0, T0 + timedelta(seconds=50), T0 + timedelta(seconds=55)]


def test_rates_drop_off_and_times():
    events = [ev("u1", "a", 0), ev("u1", "b", 10), ev("u2", "a", 0), ev("u2", "b", 30), ev("u3", "a", 0)]
    result = run(events, [{"eventName": "a"}, {"eventName": "b"}])
    one, two = result["steps"]
    assert (one["users"], one["conversionRate"], one["stepConversionRate"], one["dropOff"]) == (3, 1.0, 1.0, 0)
    assert one["avgTimeToConvertSeconds"] is None and one["medianTimeToConvertSeconds"] is None
    assert (two["users"], two["conversionRate"], two["dropOff"]) == (2, 2 / 3, 1)
    assert two["avgTimeToConvertSeconds"] == 20.0 and two["medianTimeToConvertSeconds"] == 20.0  # mean of 10, 30
    assert result["overallConversionRate"] == 2 / 3
    empty = run([], [{"eventName": "a"}, {"eventName": "b"}])
    assert [s["conversionRate"] for s in empty["steps"]] == [0.0, 0.0] and empty["overallConversionRate"] == 0.0


FILTER_CASES = [
    (5, {"p": 5.0}, True),
    ("5", {"p": 5}, False),
    (True, {"p": 1}, False),
    ({"op": "neq", "value": "x"}, {}, True),
    ({"op": "neq", "value": "x"}, {"p": "x"}, False),
    ({"op": "gt", "value": 3}, {"p": 4}, True),
    ({"op": "gt", "value": 3}, {"p": "4"}, False),
    ({"op": "gte", "value": 1}, {"p": True}, False),
    ({"op": "lte", "value": 2.5}, {"p": 2.5}, True),
    ({"op": "contains", "value": "Pro"}, {"p": "Pro plan"}, True),
    ({"op": "contains", "value": "pro"}, {"p": "Pro plan"}, False),
    ({"op": "in", "value": [1, "a"]}, {"p": 1.0}, True),
    ({"op": "in", "value": [1, "a"]}, {"p": "1"}, False),
    ({"op": "exists", "value": True}, {"p": None}, False),
    ({"op": "exists", "value": True}, {"p": 0}, True),
    ({"op": "exists", "value": False}, {}, True),
]


@pytest.mark.parametrize("spec,properties,matches", FILTER_CASES)
def test_filter_semantics(spec, properties, matches):
    assert reference.filter_matches(properties, "p", spec) is matches
