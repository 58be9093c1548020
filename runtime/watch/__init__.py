"""``hema-infer watch``: arrivals in a folder, the durable journal, and reports rewritten from it."""

from hema.runtime.watch.journal import Journal, JournalError
from hema.runtime.watch.watcher import WatchSettings, watch_folder

__all__ = ["Journal", "JournalError", "WatchSettings", "watch_folder"]
