"""The pages' wall-clock times, east and west of UTC and across a DST change."""

import pytest

from dashboard.templatetags.dashboard import local_time, percent, seconds


@pytest.mark.parametrize(
    ("iso", "tz", "shown"),
    [
        ("2026-03-08T09:59:59Z", "America/Los_Angeles", "2026-03-08 01:59:59"),  # PST, the last second
        ("2026-03-08T10:00:00Z", "America/Los_Angeles", "2026-03-08 03:00:00"),  # PDT: 02:00-03:00 skipped
        ("2026-11-01T08:30:00+00:00", "America/Los_Angeles", "2026-11-01 01:30:00"),  # the first 01:30 (PDT)
        ("2026-11-01T09:30:00+00:00", "America/Los_Angeles", "2026-11-01 01:30:00"),  # the second (PST)
        ("2026-06-30T18:30:00Z", "Asia/Kolkata", "2026-07-01"),  # local midnight: a bucket's date
        ("2026-06-30T18:30:01.5Z", "Asia/Kolkata", "2026-07-01 00:00:01"),
        ("2026-01-01T00:00:00Z", "UTC", "2026-01-01"),
        ("2026-07-01", "America/Los_Angeles", "2026-07-01"),  # a cohort's date: already local
        ("2026-07-01", "Asia/Kolkata", "2026-07-01"),
        (None, "UTC", ""),
    ],
)
def test_local_time(iso, tz, shown):
    assert local_time(iso, tz) == shown


@pytest.mark.parametrize(
    ("rate", "shown"), [(0.0, "0.0%"), (1.0, "100.0%"), (1 / 3, "33.3%"), (0.99999, "100.0%"), (None, "")]
)
def test_percent(rate, shown):
    assert percent(rate) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "0 s"),
        (42.5, "42.5 s"),
        (59.0, "59 s"),
        (60, "1 min"),
        (90.4, "1 min 30 s"),
        (5400, "1 h 30 min"),
        (86460, "1 d"),  # the two largest units from the first: a day and 0 hours
        (90000, "1 d 1 h"),
        (1209600, "14 d"),
        (None, ""),
    ],
)
def test_seconds(value, shown):
    assert seconds(value) == shown
