"""Crash safety: a real process exporting, compacting, rebuilding or sweeping is killed with
SIGKILL between each two of its steps (warehouse.files.step); then nothing stored is lost or
doubled for a reader, and the next run of the same work plus the sweep recover: orphaned
files go once the grace period is over (not before), and a live file never does.

In both modes: on the test PostgreSQL database, or on a SQLite file of the test's own (see
the `driver` fixture)."""

import pytest

from tests.warehouse.helpers import assert_exact, orphans, states

EVENTS, DAYS = 90, 3
FIRST_DAY = "2024-03-10"
ALL_DAYS = {"2024-03-10": 1, "2024-03-11": 1, "2024-03-12": 1}
SEED = [["project"], ["store", {"count": EVENTS, "days": DAYS, "tag": "seed"}]]
# Each export of 30 consecutive events writes one file per day (spread() interleaves days).
THREE_FILES_A_DAY = [["export", {"limit": 30}]] * 3
EARLY_SWEEP = [["sweep", {"grace": 3600}], ["state"]]  # well inside the grace period
FINAL_SWEEP = [["sweep", {"grace": 0}], ["state"]]

# step -> files the crash leaves that no catalog row names: (how many, how many are .tmp)
EXPORT_ORPHANS = {
    "export:read": (0, 0),
    "export:tmp_written": (1, 1),
    "export:renamed": (1, 0),
    "export:before_commit": (3, 0),  # one per UTC day of the batch
    "export:committed": (0, 0),
}
COMPACT_ORPHANS = {
    "compact:read": (0, 0),
    "compact:tmp_written": (1, 1),
    "compact:renamed": (1, 0),
    "compact:before_commit": (1, 0),
    "compact:committed": (0, 0),
}
SPAN_ORPHANS = {
    "span:read": (0, 0),
    "span:tmp_written": (1, 1),
    "span:renamed": (1, 0),
    "span:before_commit": (1, 0),
    "span:committed": (0, 0),
}
REBUILD_ORPHANS = {
    "rebuild:read": (0, 0),
    "rebuild:tmp_written": (1, 1),
    "rebuild:renamed": (1, 0),
    "rebuild:before_commit": (3, 0),
    "rebuild:committed": (0, 0),
}


def _killed_at(driver, step: str, setup: list, work: list) -> tuple[int, dict]:
    """Runs `setup`, then `work` until `step` kills the process; returns the project and the
    state a new process finds."""
    done = driver.run([*setup, ["crash_at", step], *work], killed=True)
    assert [operation for operation, _ in done] == [operation for operation, *_ in setup] + ["crash_at"], done
    project = done[0][1]
    (state,) = states(driver.run([["use", project], ["state"]]))
    return project, state


def _orphan_counts(state: dict) -> tuple[int, int]:
    found = orphans(state)
    return len(found), sum(1 for path in found if path.endswith(".tmp"))


@pytest.mark.parametrize("step", EXPORT_ORPHANS)
def test_an_exporter_killed_at_any_step_loses_and_doubles_nothing(driver, step):
    project, crashed = _killed_at(driver, step, SEED, [["export"]])
    assert_exact(crashed, stored=EVENTS)
    assert _orphan_counts(crashed) == EXPORT_ORPHANS[step]
    committed = step == "export:committed"
    assert crashed["pending"] == (0 if committed else EVENTS)
    assert crashed["live_days"] == (ALL_DAYS if committed else {})

    early, exported, swept = states(driver.run([["use", project], *EARLY_SWEEP, ["export"], ["state"], *FINAL_SWEEP]))
    assert orphans(early) == orphans(crashed)  # inside the grace period: kept
    assert_exact(exported, stored=EVENTS)
    assert exported["pending"] == 0 and exported["live_days"] == ALL_DAYS
    assert_exact(swept, stored=EVENTS)
    assert orphans(swept) == []
    assert swept["live"] == exported["live"] and swept["on_disk"] == sorted(swept["live"])


@pytest.mark.parametrize("step", COMPACT_ORPHANS)
def test_a_compactor_killed_at_any_step_loses_and_doubles_nothing(driver, step):
    work = [["compact", {"day": FIRST_DAY}]]
    project, crashed = _killed_at(driver, step, SEED + THREE_FILES_A_DAY, work)
    assert_exact(crashed, stored=EVENTS)
    assert _orphan_counts(crashed) == COMPACT_ORPHANS[step]
    committed = step == "compact:committed"
    assert crashed["live_days"][FIRST_DAY] == (1 if committed else 3)
    assert len(crashed["retired"]) == (3 if committed else 0)
    assert set(crashed["retired"]) <= set(crashed["on_disk"])  # retired, still there for readers

    early, compacted, swept = states(driver.run([["use", project], *EARLY_SWEEP, *work, ["state"], *FINAL_SWEEP]))
    assert orphans(early) == orphans(crashed) and early["retired"] == crashed["retired"]
    assert set(early["retired"]) <= set(early["on_disk"])
    assert_exact(compacted, stored=EVENTS)
    assert compacted["live_days"] == {**{day: 3 for day in ALL_DAYS}, FIRST_DAY: 1}
    assert_exact(swept, stored=EVENTS)
    assert orphans(swept) == [] and swept["retired"] == []
    assert swept["live"] == compacted["live"] and swept["on_disk"] == sorted(swept["live"])


@pytest.mark.parametrize("step", REBUILD_ORPHANS)
def test_a_rebuild_killed_at_any_step_loses_and_doubles_nothing(driver, step):
    setup = SEED + THREE_FILES_A_DAY[:2]  # 60 events in six files, 30 still in the outbox
    project, crashed = _killed_at(driver, step, setup, [["rebuild"]])
    assert_exact(crashed, stored=EVENTS)
    assert crashed["pending"] == 30
    assert _orphan_counts(crashed) == REBUILD_ORPHANS[step]
    committed = step == "rebuild:committed"
    assert crashed["live_days"] == (ALL_DAYS if committed else {day: 2 for day in ALL_DAYS})
    assert len(crashed["retired"]) == (6 if committed else 0)

    rebuilt, swept = states(driver.run([["use", project], ["rebuild"], ["state"], *FINAL_SWEEP]))
    assert_exact(rebuilt, stored=EVENTS)
    assert rebuilt["pending"] == 0 and rebuilt["live_days"] == ALL_DAYS
    assert_exact(swept, stored=EVENTS)
    assert orphans(swept) == [] and swept["retired"] == []
    assert swept["on_disk"] == sorted(swept["live"])


@pytest.mark.parametrize("step", SPAN_ORPHANS)
def test_a_span_merge_killed_at_any_step_loses_and_doubles_nothing(driver, step):
    setup = SEED + THREE_FILES_A_DAY + [["spans"], ["compact", {"day": FIRST_DAY}]]  # the span then stale
    project, crashed = _killed_at(driver, step, setup, [["spans"]])
    assert_exact(crashed, stored=EVENTS)
    assert _orphan_counts(crashed) == SPAN_ORPHANS[step]
    assert crashed["live_spans"] == 1 and len(crashed["spans"]) == (2 if step == "span:committed" else 1)

    early, merged, swept = states(driver.run([["use", project], *EARLY_SWEEP, ["spans"], ["state"], *FINAL_SWEEP]))
    assert orphans(early) == orphans(crashed)
    assert_exact(merged, stored=EVENTS)
    assert merged["live_spans"] == 1
    assert_exact(swept, stored=EVENTS)
    assert orphans(swept) == [] and swept["retired"] == [] and len(swept["spans"]) == 1


def test_a_sweep_killed_between_deleting_a_file_and_its_catalog_row_is_finished_by_the_next(driver):
    setup = SEED + THREE_FILES_A_DAY + [["compact", {"day": FIRST_DAY}]]
    project, crashed = _killed_at(driver, "sweep:unlinked", setup, [["sweep", {"grace": 0}]])
    assert_exact(crashed, stored=EVENTS)
    assert len(crashed["retired"]) == 3
    assert len(set(crashed["retired"]) - set(crashed["on_disk"])) == 1  # its file gone, its row not

    (swept,) = states(driver.run([["use", project], *FINAL_SWEEP]))
    assert_exact(swept, stored=EVENTS)
    assert swept["retired"] == [] and swept["on_disk"] == sorted(swept["live"])
    assert swept["live"] == crashed["live"]
