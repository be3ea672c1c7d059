"""Following a job by the store's changes: a write in the store's folder wakes the watcher at once."""
from __future__ import annotations

import select

from nbsage.watch import StoreChanges


def readable(changes: StoreChanges) -> bool:
    return bool(select.select([changes.fd], [], [], 0)[0])


def test_a_write_in_the_store_folder_wakes_the_watcher(tmp_path):
    with StoreChanges(tmp_path) as changes:
        assert changes.fd is not None  # Linux: inotify
        assert not readable(changes)
        (tmp_path / "nbsage.db-wal").write_bytes(b"x")
        assert readable(changes)  # the event is queued by the write itself
        changes.wait(60)  # returns at once: a change is pending
        assert not readable(changes)  # every pending change was taken by that one wake
    assert changes.fd is None


def test_without_inotify_the_watcher_polls(tmp_path):
    with StoreChanges(None) as changes:
        assert changes.fd is None
        changes.wait(0)
    with StoreChanges(tmp_path / "no such folder") as changes:
        assert changes.fd is None
