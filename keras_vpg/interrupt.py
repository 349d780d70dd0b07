"""Ctrl-C and SIGTERM during ``fit``: stop at a safe point, checkpoint, exit 130 / 143.

While :meth:`keras_vpg.VPG.fit` runs (in the main thread), :class:`StopOnSignals`
replaces the SIGINT and SIGTERM handlers with one that only records the signal;
the training loop calls :meth:`StopOnSignals.check` at safe points (between
chunks of env steps, never inside an update) and that raises
:class:`Interrupted` (SIGINT) or :class:`Terminated` (SIGTERM). Both are
``KeyboardInterrupt`` subclasses, so ``except KeyboardInterrupt`` (a notebook,
a script) catches either; :func:`exit_status` tells them apart for a command
line (130 = 128 + SIGINT, 143 = 128 + SIGTERM). A second Ctrl-C while the first
is pending raises ``KeyboardInterrupt`` at once (no checkpoint). The previous
handlers are put back when ``fit`` returns.

Under MPI every rank checks at the same points and the ranks agree (a max over
ranks) before raising, so they all stop at the same step, rank 0 writes the
checkpoint, and every rank exits.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from keras_vpg import mpi


class Interrupted(KeyboardInterrupt):
    """Training stopped at a safe point after SIGINT (Ctrl-C).

    Attributes
    ----------
    signum : int
        The signal received.
    checkpoint : str or None
        The checkpoint written on the way out (set by the agent), if any.
    all_ranks : bool
        Always True: under MPI every rank raises it at the same step.
    """

    exit_status = 130
    all_ranks = True

    def __init__(self, signum: int = signal.SIGINT, message: str | None = None):
        super().__init__(message or f"training stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)
        self.checkpoint: str | None = None


class Terminated(Interrupted):
    """Training stopped at a safe point after SIGTERM (a scheduler, ``kill``, ``mpirun``)."""

    exit_status = 143


def exit_status(error: BaseException) -> int | None:
    """Exit status for an interruption: 143 (SIGTERM), 130 (SIGINT / Ctrl-C), else ``None``."""
    if isinstance(error, Interrupted):
        return error.exit_status
    return 130 if isinstance(error, KeyboardInterrupt) else None


@contextlib.contextmanager
def exit_on_interrupt() -> Iterator[None]:
    """For command lines: turn an interruption into ``SystemExit(130 / 143)``, no traceback.

    The one-line message (where the checkpoint is, how to resume) has already
    been printed by ``fit``; a ``KeyboardInterrupt`` from elsewhere prints nothing.
    """
    try:
        yield
    except KeyboardInterrupt as error:
        raise SystemExit(exit_status(error)) from None


class StopOnSignals:
    """Records SIGINT / SIGTERM instead of raising mid-update (a context manager).

    Installs its handlers only in the main thread (elsewhere ``signal`` cannot,
    and :meth:`check` never raises) and puts the previous ones back on exit.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: stopped at once, without a checkpoint")
        if self.received is None or signum == signal.SIGTERM:
            self.received = signum

    def check(self) -> None:
        """Raise :class:`Terminated` / :class:`Interrupted` if a signal was received.

        The signal is agreed over MPI ranks (SIGTERM wins): every rank calls this at
        the same points (without MPI: this rank's signal).
        """
        signum = int(mpi.mpi_max(self.received or 0))
        if signum:
            raise Terminated(signum) if signum == signal.SIGTERM else Interrupted(signum)


def print_line(text: str, end_bar: bool = False) -> None:
    """One line on stderr (with ``end_bar``, first end the progress bar's line on stdout)."""
    if end_bar:
        print(flush=True)
    print(text, file=sys.stderr, flush=True)
