"""Progress on the terminal: one status line redrawn in place, or a line per epoch."""

from __future__ import annotations

import sys
import time


class Progress:
    """One status line, redrawn in place on a terminal; a line per epoch otherwise."""

    def __init__(self, stream=None, enabled=True, muted=False):
        self.stream = sys.stderr if stream is None else stream  # the one of the moment, not of import time
        self.enabled = enabled
        self.muted = muted  # nothing at all, warnings neither (the processes of a run other than 0)
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last = 0.0

    def update(self, text):
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self.last = now

    def clear(self):
        """Take the status line away (on a terminal)."""
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def line(self, text, always=False):
        """Write a line; ``always`` writes it even when the display is off (for warnings)."""
        if self.muted or not (self.enabled or always):
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def fmt_time(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"
