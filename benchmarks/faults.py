"""Faults survived, by the numbers: ``kill -9`` at random moments of a training, then ``--resume``.

For each trial a fresh CartPole run (``keras-vpg train``) is killed with SIGKILL (the whole
session: with ``--cpu 2`` the launcher and, through the launcher watch of ``mpi_fork``, both
ranks) at a moment of its training drawn evenly over the epochs: the draws u in
[0, epochs) are stratified (one in each of ``kills`` equal slices, shuffled), and the kill
comes after floor(u) logged epochs plus frac(u) of that epoch's duration in the uninterrupted
run (scaled by how fast this run has been so far against it), or as soon as the epoch's row is
written if that comes first, so no kill lands after the last row. A share of the trials is
killed instead the moment a checkpoint is being written (``checkpoints/.tmp_ckpt_*``).
Then ``keras-vpg train --resume`` runs to the end.
Checked per trial:

- the resume completes (exit 0);
- every epoch appears once in progress.txt, TotalEnvInteracts continuous;
- the rows up to the checkpoint it resumed from equal the uninterrupted run's (Time and
  StepsPerSecond aside); the rows after it are counted too (exact resume);
- the newest checkpoint is readable, or ``latest_checkpoint`` falls back to the one before;
- the resume starts from the newest complete checkpoint: no more epochs lost than those
  logged since it (at most ``--save-freq``).

Then a checkpoint write that fails (a file-size limit set on the running process with
``prlimit``, the way a full disk fails a write): the previous checkpoint stays usable and the
command stops with one line on stderr.

Figures go to ``benchmarks/results_faults.json``. Bounded: ``--budget`` seconds in all
(trials not started by then are skipped and the count says so). Not part of CI: the full
run below took about 70 minutes on 2 loaded cores.

    nice -n 10 python benchmarks/faults.py --kills 50 --kills-mpi 10 --budget 6000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORED = ("Time", "StepsPerSecond")


def train_command(data_dir: Path, args, cpu: int) -> list[str]:
    return [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs",
            str(args.epochs), "--steps-per-epoch", str(args.steps), "--train-v-iters", "5",
            "--hid", "16", "--save-freq", str(args.save_freq), "--exp-name", "f", "--seed", "0",
            "--data-dir", str(data_dir), "--backend", args.backend, "--verbose", "0",
            "--cpu", str(cpu)]


def environment() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("IN_MPI", None)
    return env


def rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "progress.txt"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def comparable(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if k not in IGNORED}


def session_processes(sid: int) -> list[int]:
    """PIDs whose session is ``sid`` (the killed run's launcher and ranks)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                found.append(int(entry))
    return found


def checkpoint_state(run_dir: Path) -> dict:
    """What a resume would find: the checkpoints, whether the newest reads, the fallback."""
    from keras_vpg import checkpoint

    listed = checkpoint.list_checkpoints(run_dir)
    newest_ok = None
    if listed:
        try:
            checkpoint.read_checkpoint(listed[-1][1])
            newest_ok = True
        except checkpoint.CheckpointError:
            newest_ok = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        latest = checkpoint.latest_checkpoint(run_dir)
    latest_epoch = None if latest is None else int(latest.name.split("_")[-1])
    tmp = [p.name for p in checkpoint.checkpoint_dir(run_dir).glob(".*")] if listed or (
        checkpoint.checkpoint_dir(run_dir).exists()) else []
    return {"epochs": [e for e, _ in listed], "newest_readable": newest_ok,
            "latest_usable": latest_epoch, "leftovers": tmp}


def kill_group(process: subprocess.Popen) -> int:
    """SIGKILL the run's whole session; returns how many of its processes survived it."""
    sid = process.pid
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    survivors = 0
    for _ in range(50):
        left = session_processes(sid)
        if not left:
            break
        time.sleep(0.1)
    for pid in session_processes(sid):
        survivors += 1
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return survivors


def trial(index: int, args, cpu: int, reference: list[dict], window: dict,
          during_write: bool, u: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"fault{index}_", dir=args.workdir))
    run_dir = work / "f" / "f_s0"
    env = environment()
    duration = window["seconds"]
    process = subprocess.Popen(train_command(work, args, cpu), cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    start = time.monotonic()
    hit_write = False
    if during_write:  # kill the moment a checkpoint directory is being written
        ckpts = run_dir / "checkpoints"
        while process.poll() is None and time.monotonic() - start < duration * 3:
            if ckpts.exists() and any(p.name.startswith(".tmp_ckpt_") for p in ckpts.iterdir()):
                hit_write = True
                break
            time.sleep(0.002)
    else:
        # A moment of the training, drawn in epochs: floor(u) logged rows, then frac(u) of
        # epoch floor(u)'s duration in the reference (scaled by this run's pace so far), or
        # the moment that epoch's row is written, whichever comes first.
        k, frac = int(u), u - int(u)
        config = run_dir / "config.json"
        while process.poll() is None and not config.exists():
            time.sleep(0.005)
        began = last = time.monotonic()
        seen = 0
        while process.poll() is None and seen < k:
            now_rows = len(rows(run_dir))
            if now_rows > seen:
                seen, last = now_rows, time.monotonic()
            time.sleep(0.005)
        ref = window["row_times"]  # seconds from the reference's config.json to each row
        scale = (last - began) / ref[k - 1] if k >= 1 and ref[k - 1] > 0 else 1.0
        delay = frac * (ref[k] - (ref[k - 1] if k >= 1 else 0.0)) * scale
        while (process.poll() is None and time.monotonic() - last < delay
               and len(rows(run_dir)) <= k):
            time.sleep(0.005)
    finished_before_kill = process.poll() is not None
    survivors = kill_group(process)
    killed_at = time.monotonic() - start
    logged = rows(run_dir)
    state = checkpoint_state(run_dir) if run_dir.exists() else {
        "epochs": [], "newest_readable": None, "latest_usable": None, "leftovers": []}
    result = {"index": index, "cpu": cpu, "target_write": during_write, "hit_write": hit_write,
              "target_epochs": None if during_write else round(u, 3),
              "killed_at_s": round(killed_at, 2), "finished_before_kill": finished_before_kill,
              "survivors": survivors, "epochs_logged_at_kill": len(logged),
              "checkpoints_at_kill": state["epochs"], "newest_readable": state["newest_readable"],
              "resumed_from": state["latest_usable"], "leftovers": state["leftovers"]}
    if state["latest_usable"] is None:
        # Killed before the first checkpoint: nothing to resume; a fresh run is the answer.
        command = train_command(work, args, cpu)
        result["action"] = "fresh run (no checkpoint yet)"
    else:
        command = [sys.executable, "-m", "keras_vpg", "train", "--resume", str(run_dir),
                   "--verbose", "0"]
        result["action"] = "resume"
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                          timeout=args.timeout)
    result["exit"] = done.returncode
    if done.returncode != 0:
        result["stderr"] = done.stderr[-2000:]
    final = rows(run_dir)
    epochs = [int(r["Epoch"]) for r in final]
    interacts = [int(float(r["TotalEnvInteracts"])) for r in final]
    result["each_epoch_once"] = epochs == list(range(args.epochs))
    result["interacts_continuous"] = interacts == [
        args.steps * (i + 1) for i in range(args.epochs)]
    base = state["latest_usable"] or 0
    prefix_ok = [comparable(a) for a in final[:base]] == [comparable(b) for b in reference[:base]]
    result["rows_to_checkpoint_identical"] = prefix_ok
    result["rows_identical_after"] = sum(
        comparable(a) == comparable(b) for a, b in zip(final[base:], reference[base:]))
    result["rows_after"] = max(0, len(final) - base)
    newest_complete = max(state["epochs"]) if state["epochs"] else None
    result["lost_epochs"] = len(logged) - base
    # Resumed from the newest complete checkpoint, losing only the epochs logged since it.
    result["loss_within_bound"] = bool(
        (newest_complete is None or state["latest_usable"] == newest_complete)
        and result["lost_epochs"] <= args.save_freq)
    result["ok"] = bool(not finished_before_kill and done.returncode == 0
                        and result["each_epoch_once"]
                        and result["interacts_continuous"] and prefix_ok
                        and result["loss_within_bound"] and state["newest_readable"] is not False
                        and survivors == 0)
    if result["ok"] and not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return result


def reference_run(args, cpu: int) -> tuple[list[dict], dict]:
    """The uninterrupted run's rows, and its timing: ``began`` (seconds from launch to
    config.json, start-up done), ``seconds`` (launch to exit) and ``row_times`` (seconds from
    config.json to each row of progress.txt)."""
    work = Path(tempfile.mkdtemp(prefix=f"reference_cpu{cpu}_", dir=args.workdir))
    run_dir = work / "f" / "f_s0"
    start = time.monotonic()
    process = subprocess.Popen(train_command(work, args, cpu), cwd=work, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    began = None
    row_times: list[float] = []
    while process.poll() is None:
        if began is None and (run_dir / "config.json").exists():
            began = time.monotonic() - start
        if began is not None:
            count = len(rows(run_dir))
            while len(row_times) < count:
                row_times.append(time.monotonic() - start - began)
        time.sleep(0.005)
    err = process.stderr.read()
    seconds = time.monotonic() - start
    if process.returncode != 0:
        raise SystemExit(f"reference run failed:\n{err[-3000:]}")
    if len(row_times) != args.epochs:
        raise SystemExit(f"reference run: saw {len(row_times)} rows appear, not {args.epochs}")
    return rows(run_dir), {"began": began or 0.0, "seconds": seconds, "row_times": row_times}


def failed_write(args) -> dict:
    """A checkpoint write that fails: a file-size limit set once the first checkpoint exists."""
    work = Path(tempfile.mkdtemp(prefix="failed_write_", dir=args.workdir))
    run_dir = work / "f" / "f_s0"
    process = subprocess.Popen(train_command(work, args, 1), cwd=work, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    first = run_dir / "checkpoints" / f"ckpt_{args.save_freq}"
    while process.poll() is None and not first.exists() and time.monotonic() - start < 600:
        time.sleep(0.01)
    # Files may not grow beyond 1 KB from now on: model_<epoch>.keras and arrays.npz cannot
    # be written (EFBIG, as ENOSPC on a full disk); progress.txt rows still fit.
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1024, 1024))
    out, err = process.communicate(timeout=args.timeout)
    state = checkpoint_state(run_dir)
    err_lines = [line for line in err.splitlines() if line.strip()]
    result = {"exit": process.returncode, "stderr_lines": len(err_lines),
              "stderr_tail": err_lines[-5:], "traceback": "Traceback" in err,
              "checkpoints": state["epochs"], "newest_readable": state["newest_readable"],
              "latest_usable": state["latest_usable"], "leftovers": state["leftovers"]}
    resumed = subprocess.run([sys.executable, "-m", "keras_vpg", "train", "--resume",
                              str(run_dir), "--verbose", "0"], cwd=work, env=environment(),
                             capture_output=True, text=True, timeout=args.timeout)
    final = rows(run_dir)
    result["resume_exit"] = resumed.returncode
    result["resume_each_epoch_once"] = [int(r["Epoch"]) for r in final] == list(
        range(args.epochs))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="kill -9 trials, one process")
    parser.add_argument("--kills-mpi", type=int, default=10, help="kill -9 trials, --cpu 2")
    parser.add_argument("--write-share", type=float, default=0.2,
                        help="share of trials killed while a checkpoint is being written")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--save-freq", type=int, default=2)
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--budget", type=float, default=2400, help="seconds for everything")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_faults.json"))
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="keras_vpg_faults_")
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    start = time.monotonic()
    report = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "groups": {}}
    report["failed_write"] = failed_write(args)
    print(json.dumps(report["failed_write"], indent=1), flush=True)
    # The budget: about two thirds for the one-process kills, the rest for --cpu 2.
    deadlines = {1: start + args.budget * 0.65, 2: start + args.budget}
    for cpu, count in ((1, args.kills), (2, args.kills_mpi)):
        if count <= 0:
            continue
        reference, seconds = reference_run(args, cpu)
        # Kill moments spread evenly over the epochs: one draw in each of `count` slices.
        moments = [(i + rng.random()) * args.epochs / count for i in range(count)]
        rng.shuffle(moments)
        trials = []
        for i in range(count):
            if time.monotonic() > deadlines[cpu]:
                break
            during_write = rng.random() < args.write_share
            trials.append(trial(i, args, cpu, reference, seconds, during_write, moments[i]))
            t = trials[-1]
            print(f"cpu {cpu} trial {i}: u {t['target_epochs']}, killed at {t['killed_at_s']} s, "
                  f"logged {t['epochs_logged_at_kill']}, resumed from {t['resumed_from']}, "
                  f"write hit {t['hit_write']}, survivors {t['survivors']}, ok {t['ok']}",
                  flush=True)
        report["groups"][f"cpu{cpu}"] = summarize(trials, count, seconds, args)
        report["groups"][f"cpu{cpu}"]["trials"] = trials
    report["seconds"] = round(time.monotonic() - start, 1)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "trials"}
                      for k, v in report["groups"].items()}, indent=1))


def summarize(trials: list[dict], planned: int, seconds: float, args) -> dict:
    def count(key, value=True):
        return sum(t.get(key) == value for t in trials)

    return {
        "planned": planned, "run": len(trials),
        "reference_training_window_s": [round(seconds["began"], 1),
                                        round(seconds["seconds"], 1)],
        "reference_row_times_s": [round(t, 2) for t in seconds["row_times"]],
        # how many rows were logged when the kill came: 0 .. epochs (epochs = after the last)
        "kills_by_rows_logged": [sum(t["epochs_logged_at_kill"] == n for t in trials)
                                 for n in range(args.epochs + 1)],
        "ok": count("ok"), "resumes_completed": count("exit", 0),
        "resumed_from_checkpoint": count("action", "resume"),
        "killed_before_first_checkpoint": count("action", "fresh run (no checkpoint yet)"),
        "killed_after_finishing": count("finished_before_kill"),
        "killed_during_checkpoint_write": count("hit_write"),
        "each_epoch_once": count("each_epoch_once"),
        "interacts_continuous": count("interacts_continuous"),
        "rows_to_checkpoint_identical": count("rows_to_checkpoint_identical"),
        "rows_after_checkpoint_identical": f"{sum(t['rows_identical_after'] for t in trials)}"
                                           f" of {sum(t['rows_after'] for t in trials)}",
        "newest_checkpoint_unreadable": count("newest_readable", False),
        "max_lost_epochs": max((t["lost_epochs"] for t in trials), default=0),
        "loss_within_bound": count("loss_within_bound"),
        "survivor_processes": sum(t["survivors"] for t in trials),
    }


if __name__ == "__main__":
    main()
