"""Every VPGConfig field that has a ``train`` flag: a non-default value reaches VPG.

One run with every such flag set away from its default; VPG's own record of its
arguments (config.json) and what the run did (progress.txt, checkpoints) must show
each value. A field that gains a flag without an entry in NON_DEFAULT fails the walk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from keras_vpg.config import VPGConfig
from keras_vpg.plot import read_progress

#: A value different from the default for each field with a flag, and its flag's words.
NON_DEFAULT = {
    "seed": (3, ["--seed", "3"]),
    "steps_per_epoch": (60, ["--steps-per-epoch", "60"]),
    "gamma": (0.9, ["--gamma", "0.9"]),
    "pi_lr": (0.002, ["--pi-lr", "0.002"]),
    "vf_lr": (0.003, ["--vf-lr", "0.003"]),
    "train_v_iters": (2, ["--train-v-iters", "2"]),
    "lam": (0.9, ["--lam", "0.9"]),
    "max_ep_len": (7, ["--max-ep-len", "7"]),
    "save_freq": (1, ["--save-freq", "1"]),
    "num_envs": (2, ["--num-envs", "2"]),
    "vector_mode": ("async", ["--vector-mode", "async"]),
    "normalize_obs": (True, ["--normalize-obs"]),
    "keep_checkpoints": (1, ["--keep-checkpoints", "1"]),
}


def flagged_fields():
    return [f for f in dataclasses.fields(VPGConfig) if f.metadata["cli"] is not None]


def test_every_flagged_field_has_a_non_default_value_here():
    for field in flagged_fields():
        assert field.name in NON_DEFAULT, f"add --{field.name.replace('_', '-')} to NON_DEFAULT"
        assert NON_DEFAULT[field.name][0] != field.default, field.name


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("flags")
    args = [sys.executable, "-m", "keras_vpg", "train", "--env", "CartPole-v1", "--epochs", "3",
            "--hid", "8", "--exp-name", "f", "--backend", "jax", "--verbose", "0"]
    for field in flagged_fields():
        args += NON_DEFAULT[field.name][1]
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd / "data" / "f" / "f_s3"


def test_each_value_reaches_vpg(run):
    config = json.loads((run / "config.json").read_text())
    for field in flagged_fields():
        assert config[field.name] == NON_DEFAULT[field.name][0], (field.name, config[field.name])


def test_the_run_did_what_the_flags_said(run):
    columns = read_progress(run / "progress.txt")
    assert columns["TotalEnvInteracts"].tolist() == [60, 120, 180]
    assert columns["EpLen"].max() <= 7  # --max-ep-len 7 (CartPole lasts longer)
    # --save-freq 1: a model every epoch; --keep-checkpoints 1: only the newest checkpoint.
    assert len(list(run.glob("model_*.keras"))) == 3, sorted(p.name for p in run.iterdir())
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt_*")) == ["ckpt_3"]
