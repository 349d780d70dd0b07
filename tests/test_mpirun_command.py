"""keras_vpg.mpi.mpirun_command: the mpirun flags for one machine, a hostfile, extra arguments."""

from __future__ import annotations

import pytest

from keras_vpg import mpi

needs_mpirun = pytest.mark.skipif(
    mpi.mpirun_path() is None or not mpi.mpi_available(),
    reason='needs mpi4py and mpirun: pip install "keras-vpg[mpi]"',
)


@needs_mpirun
def test_one_machine_oversubscribes_and_binds_when_ranks_fit():
    command = mpi.mpirun_command(1)
    assert command[1:3] == ["-np", "1"]
    assert "--oversubscribe" in command and "--hostfile" not in command
    assert command[command.index("--bind-to") + 1] == "core:overload-allowed"


@needs_mpirun
def test_a_hostfile_places_ranks_and_forwards_the_environment(tmp_path):
    hostfile = tmp_path / "hosts.txt"
    hostfile.write_text("node1 slots=4\nnode2 slots=4\n")
    env = {"KERAS_BACKEND": "jax", "IN_MPI": "1", "HOME": "/root"}
    command = mpi.mpirun_command(8, hostfile=hostfile, extra_args=["--mca", "btl", "tcp,self"],
                                 env=env)
    assert command[command.index("--hostfile") + 1] == str(hostfile)
    assert "--oversubscribe" not in command  # the hostfile's slots are the limit
    exported = [command[i + 1] for i, arg in enumerate(command) if arg == "-x"]
    assert sorted(exported) == ["IN_MPI", "KERAS_BACKEND"]  # HOME is not the run's business
    assert command[-3:] == ["--mca", "btl", "tcp,self"]


@needs_mpirun
def test_user_binding_replaces_ours():
    command = mpi.mpirun_command(2, extra_args=["--map-by", "ppr:1:node"])
    assert "--bind-to" not in command and command[-2:] == ["--map-by", "ppr:1:node"]


@needs_mpirun
def test_bad_launch_arguments_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="hostfile"):
        mpi.mpirun_command(2, hostfile=tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="extra_args"):
        mpi.mpirun_command(2, extra_args="--mca btl tcp")
    with pytest.raises(ValueError, match="number of processes"):
        mpi.mpirun_command(0)
