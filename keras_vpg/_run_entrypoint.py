"""One run of an experiment grid: ``python -m keras_vpg._run_entrypoint PAYLOAD``.

``PAYLOAD`` is a cloudpickle of ``(thunk, kwargs, num_cpu, hostfile, mpirun_args)``
written by :func:`keras_vpg.grid.run_experiments`. With ``num_cpu > 1`` the
process re-launches itself (this same command) under ``mpirun``.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m keras_vpg._run_entrypoint PAYLOAD")
    import cloudpickle

    from keras_vpg.grid import call_experiment

    with open(argv[0], "rb") as f:
        thunk, kwargs, num_cpu, hostfile, mpirun_args = cloudpickle.load(f)
    call_experiment(thunk, kwargs, num_cpu=num_cpu, hostfile=hostfile, mpirun_args=mpirun_args)


if __name__ == "__main__":
    main(sys.argv[1:])
