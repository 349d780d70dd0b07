"""A NaN that comes from the value steps (not the policy step) stops training the same way:
one NonFiniteError naming LossV or the value weights, the epoch, and the last good checkpoint,
which stays the newest (with the value steps in the foreground or overlapped)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import keras_vpg
from keras_vpg.checkpoint import NonFiniteError, latest_checkpoint, list_checkpoints


@pytest.mark.parametrize("overlap", [False, True])
def test_nan_from_the_value_steps_stops_and_keeps_the_last_checkpoint(overlap, tmp_path):
    agent = keras_vpg.VPG(
        lambda: gym.make("CartPole-v1"), steps_per_epoch=200, train_v_iters=3, save_freq=1,
        ac_kwargs=dict(hidden_sizes=(8,)), overlap_update=overlap,
        logger_kwargs=dict(output_dir=str(tmp_path / "run")),
    )
    agent.fit(epochs=2, verbose=0)
    update_value = agent.trainer.update_value

    def poisoned(batch):
        batch = dict(batch)
        batch["ret"] = np.array(batch["ret"], copy=True)
        batch["ret"][0] = np.nan
        return update_value(batch)

    agent.trainer.update_value = poisoned
    with pytest.raises(NonFiniteError, match=r"epoch 2: .*(LossV = nan|non-finite weights)"
                                             r".*ckpt_2") as raised:
        agent.fit(epochs=3, verbose=0)
    agent.close()
    assert "LossPi" not in str(raised.value)  # the policy step was fine
    assert [e for e, _ in list_checkpoints(tmp_path / "run")] == [1, 2]
    assert latest_checkpoint(tmp_path / "run").name == "ckpt_2"
