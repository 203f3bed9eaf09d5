"""A small progress display on stderr (standard library only): used by `solve_batch` and by
the command line."""

import sys
import time


class Progress:
    """Prints `[name] message (elapsed s)` lines to a stream (default stderr).

    Call `progress(message)` at each stage, and `progress.bar(i, n, message)` inside long
    loops over chunks (it redraws one line when the stream is a terminal, and otherwise
    prints only the first and the last state). `quiet=True` prints nothing."""

    def __init__(self, name: str = "", stream=None, quiet: bool = False):
        self.name = name
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.start = time.perf_counter()

    def _prefix(self) -> str:
        return f"[{self.name}] " if self.name else ""

    def __call__(self, message: str) -> None:
        if not self.quiet:
            dt = time.perf_counter() - self.start
            print(f"{self._prefix()}{message} ({dt:.1f} s)", file=self.stream, flush=True)

    def bar(self, i: int, n: int, message: str = "") -> None:
        if self.quiet:
            return
        width = 30
        filled = int(width * i / max(n, 1))
        line = f"{self._prefix()}{message} [{'#' * filled}{'.' * (width - filled)}] {i}/{n}"
        if getattr(self.stream, "isatty", lambda: False)():
            end = "\n" if i >= n else ""
            print("\r" + line, end=end, file=self.stream, flush=True)
        elif i >= n or i == 0:
            print(line, file=self.stream, flush=True)
