"""Today's tasks for this site, read once and kept in memory.

A central vault sees every truck of the day: thousands of tasks. The screen, arrivals and staff actions
look at them on every change, so they are read from the store only when they may have changed: a task
written (imports from USB, downlinks, the sample day: every writer goes through Store.upsert_task, which
bumps Store.tasks_version), or the date (or the site) changing. Route progress does not touch them: a
task's body and its stops are the same whatever head office reports of the other stops, and at a vault
such reports come for every stop of every truck.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import date, datetime

from agent.store import Store
from flows.model import Task


class TodaysTasks:
    def __init__(self, store: Store, in_transaction: Callable[[], bool]):
        self._store = store
        self._in_transaction = in_transaction
        self._key: tuple | None = None
        self._tasks: list[Task] = []
        self._by_id: dict[str, Task] = {}
        self._by_end: list[Task] = []
        self._ends: list[datetime] = []

    def on(self, day: date, site_id: str) -> list[Task]:
        """Tasks stopping at `site_id` whose window touches `day`, by window start (Store.tasks_on)."""
        key = (day, site_id, self._store.tasks_version)
        if key != self._key:
            # read while another thread's transaction is open, the rows may still roll back: used, not kept
            keep = not self._in_transaction()
            self._load(self._store.tasks_on(day, site_id))
            self._key = key if keep else None
        return self._tasks

    def _load(self, tasks: list[Task]) -> None:
        self._tasks = tasks
        self._by_id = {t.task_id: t for t in tasks}
        self._by_end = sorted(tasks, key=lambda t: (t.window_end, t.task_id))
        self._ends = [t.window_end for t in self._by_end]

    # what follows reads the tasks of the last on(): call it first

    def get(self, task_id: str) -> Task | None:
        return self._by_id.get(task_id)

    def due(self, since: datetime, n: int, keep: Callable[[Task], bool]) -> list[Task]:
        """At most n tasks that `keep` accepts whose window ends at `since` or later, the earliest end
        first. Found by bisection: the day's long-gone tasks are not walked."""
        out = []
        for task in self._by_end[bisect.bisect_left(self._ends, since):]:
            if keep(task):
                out.append(task)
                if len(out) == n:
                    break
        return out

    def ended_before(self, moment: datetime) -> int:
        """How many of the tasks' windows ended before `moment`."""
        return bisect.bisect_left(self._ends, moment)

