"""A small text progress bar on stderr for long work (calibration, sensitivity, fine-tuning).

Quiet when stderr is not a terminal (logs and CI stay clean) unless ``force=True``, and off with
``enabled=False``. No dependency: tqdm-like output is one line redrawn with ``\\r``.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "", *, enabled: bool = True,
                 force: bool = False, stream=None, width: int = 28):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.postfix = ""
        self.start = time.monotonic()
        self._last = 0.0
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = enabled and (force or isatty)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.done += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self._draw()

    def _draw(self, end=""):
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(self.width * min(frac, 1.0)))
        elapsed = time.monotonic() - self.start
        bar = "#" * filled + "-" * (self.width - filled)
        post = f"  {self.postfix}" if self.postfix else ""
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} "
                          f"{elapsed:5.1f}s{post}{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(end="\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
