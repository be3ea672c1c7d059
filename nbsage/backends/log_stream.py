"""Log lines of a running job -> the store: logs, scraped metrics and progress, in small batches."""
from __future__ import annotations

import threading
import time

from nbsage.runtime.metrics import MetricScraper, parse_progress


class LogSink:
    """Buffers lines and writes them to the store at most every `interval` seconds.

    A background thread also flushes every `interval`, so a line followed by a quiet spell (a
    long epoch) still reaches the store, and the live display, at once.
    """

    def __init__(self, store, job_name: str, metric_definitions=None, interval: float = 0.1):
        self.store, self.job, self.interval = store, job_name, interval
        self.scraper = MetricScraper(metric_definitions)
        self._lines: list[tuple[float, str]] = []
        self._metrics: list = []
        self._progress = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._closed = threading.Event()
        threading.Thread(target=self._flush_periodically, daemon=True).start()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self.interval):
            if self._lines or self._metrics or self._progress:
                try:
                    self.flush()
                except Exception:  # the store may be busy; the next round or close() retries
                    pass

    def close(self) -> None:
        self._closed.set()
        self.flush()

    def write(self, line: str) -> None:
        now = time.time()
        line = line.rstrip("\n")
        progress = parse_progress(line)
        with self._lock:
            if progress:
                self._progress = progress
            else:
                self._lines.append((now, line))
            for m in self.scraper.scrape(line):
                self._metrics.append((m.name, m.value, m.step, now))
        if time.monotonic() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:  # one flush at a time keeps the lines in order in the store
            with self._lock:
                lines, metrics, progress = self._lines, self._metrics, self._progress
                self._lines, self._metrics, self._progress = [], [], None
                self._last_flush = time.monotonic()
            self.store.add_logs(self.job, lines)
            self.store.add_metrics(self.job, metrics)
            if progress:
                self.store.update_job(self.job, progress_step=progress[0], progress_total=progress[1])
