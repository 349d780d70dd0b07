"""PyTorch trainer: autograd on the Keras variables; allreduce on the gradient buffers.

Keras layers called eagerly cost ~1 ms per env step on this backend (op dispatch
through ``keras.ops``), ``torch.compile`` of the Keras model ~120 us per call on
this 2-core machine (plus seconds of compiling), plain ``torch`` ops on the
weights ~35-45 us; inside a collection plain-MLP policies are sampled in numpy
(:class:`~keras_vpg.trainers.base.Trainer`, ~15 us: HalfCheetah-v5 epochs
566 -> 426 ms). Other models keep the Keras path. Values of MLP value
functions, and the value regression, run as plain ``torch`` ops (``addmm`` +
activation per Dense layer) on the Keras variables' own storage.

The value steps are not overlapped with collection by default
(:attr:`BackendTrainer.overlaps_collection`): their Python-side work (Keras's
Adam, autograd dispatch) holds the GIL that the env loop needs, so both slow
down (HalfCheetah-v5, 8 envs: 367 -> 366 ms per epoch; CartPole-v1, 8 envs:
245 -> 284 ms).
"""

from __future__ import annotations

import contextlib
import os
import threading

import keras
import numpy as np
import torch

from keras_vpg.mpi import usable_cores
from keras_vpg.trainers import numpy_policy
from keras_vpg.trainers.base import (
    Trainer,
    policy_loss,
    policy_metrics,
    value_loss,
    value_metrics,
)

_TORCH_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
                      "linear": None, "elu": torch.nn.functional.elu,
                      "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}


#: Intra-op threads of the update, when keras-vpg chose the thread count (else ``None``).
_update_threads: int | None = None


def configure_threads(threads: int | None) -> dict[str, str]:
    """One intra-op thread while collecting (``threads`` if given), one inter-op thread.

    Skipped when ``OMP_NUM_THREADS`` is set (the user chose). At batch 1-8 a
    second thread only adds OpenMP hand-offs, and while the env steps on the
    other core it spin-waits against it. The update (no env running) then uses
    every usable core unless ``threads`` was given: 195 -> 143 ms per
    HalfCheetah-v5 update with two cores instead of one.
    """
    global _update_threads
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    torch.set_num_threads(threads or 1)
    applied = {"torch.num_threads": str(threads or 1)}
    if threads is None:
        _update_threads = usable_cores()
        applied["torch.update_threads"] = str(_update_threads)
    try:
        torch.set_num_interop_threads(1)
        applied["torch.num_interop_threads"] = "1"
    except RuntimeError:  # the inter-op pool has already started
        pass
    return applied


@contextlib.contextmanager
def _intra_op_threads(threads: int | None):
    """Run the block with ``threads`` intra-op threads (``None``: unchanged)."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mlp_layers(net: keras.Model):
    """``[(kernel, bias or None, torch activation or None) | "flatten"]`` of a plain MLP.

    ``None`` unless the model qualifies (see :func:`numpy_policy.mlp_layers`).
    """
    steps = numpy_policy.mlp_layers(net, _TORCH_ACTIVATIONS)
    if steps is None:
        return None
    return [s if s == "flatten" else (s[0], s[1], _TORCH_ACTIVATIONS[s[2]]) for s in steps]


def _run(steps, x):
    """Apply ``steps`` (torch tensors, see :func:`mlp_layers`) to a batch ``x``."""
    for step in steps:
        if step == "flatten":
            x = x.reshape(x.shape[0], -1)
            continue
        kernel, bias, activation = step
        x = torch.addmm(bias, x, kernel) if bias is not None else x @ kernel
        if activation is not None:
            x = activation(x)
    return x


def _tensors(steps, detach: bool):
    """``steps`` with each Keras variable replaced by its torch tensor (detached: no autograd)."""
    out = []
    for step in steps:
        if step == "flatten":
            out.append(step)
            continue
        kernel, bias, activation = step
        kernel = kernel.value.detach() if detach else kernel.value
        if bias is not None:
            bias = bias.value.detach() if detach else bias.value
        out.append((kernel, bias, activation))
    return out


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`.

    Values of MLP value functions run as plain torch ops (see :func:`mlp_layers`)
    on detached views of the Keras variables. The update runs through Keras
    with autograd (the value regression as plain torch ops).
    """

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce)
        self._v_steps = mlp_layers(ac.v_net)
        # Under MPI every rank has its core: no extra threads for the update.
        self._update_threads = _update_threads if allreduce is None else None

    # -- collection ---------------------------------------------------------------------
    def compiled_sample(self, obs):
        with torch.no_grad():
            action, logp = self.ac.sample_tensors(torch.as_tensor(obs, dtype=torch.float32))
        return action.numpy(), logp.numpy()

    def value(self, obs):
        x = torch.from_numpy(np.asarray(obs, dtype=np.float32))
        with torch.no_grad():
            if self._v_steps is None:
                return self.ac.value(x).numpy()
            x = self.ac.normalize(x)
            return _run(_tensors(self._v_steps, detach=True), x).reshape(-1).numpy()

    # -- update -------------------------------------------------------------------------
    def _gradient_step(self, loss, variables, optimizer):
        for v in variables:
            v.value.grad = None
        loss.backward()
        grads = [v.value.grad for v in variables]
        if self.allreduce is not None:
            # One flat buffer per step, averaged across ranks in place.
            flat = torch.cat([g.reshape(-1) for g in grads])
            flat = torch.from_numpy(self.allreduce(flat.numpy()))
            grads = list(torch.split(flat, [g.numel() for g in grads]))
            grads = [g.reshape(v.shape) for g, v in zip(grads, variables)]
        with torch.no_grad():
            optimizer.apply(grads, variables)

    def _value_loss(self, batch):
        """MSE of V against the returns; plain torch for MLPs (same maths as value_loss)."""
        if self._v_steps is None:
            return value_loss(self.ac, batch["obs"], batch["ret"], normalized=True)
        predicted = _run(_tensors(self._v_steps, detach=False), batch["obs"]).reshape(-1)
        return torch.mean(torch.square(predicted - batch["ret"]))

    def update_policy(self, batch):
        with _intra_op_threads(self._update_threads):
            batch = _as_tensors(batch)
            loss_pi, _, entropy = policy_loss(self.ac, batch["obs"], batch["act"], batch["adv"])
            self._gradient_step(loss_pi, self.pi_variables, self.pi_optimizer)
            with torch.no_grad():
                metrics = policy_metrics(self.ac, batch, loss_pi.detach(), entropy.detach())
        return {k: float(v) for k, v in metrics.items()}

    def update_value(self, batch):
        # The thread count is process-wide: only the main thread changes it.
        on_main_thread = threading.current_thread() is threading.main_thread()
        with _intra_op_threads(self._update_threads if on_main_thread else None):
            batch = _as_tensors(batch)
            loss_v_old = None
            for _ in range(self.train_v_iters):
                loss_v = self._value_loss(batch)
                loss_v_old = loss_v.detach() if loss_v_old is None else loss_v_old
                self._gradient_step(loss_v, self.v_variables, self.vf_optimizer)
            with torch.no_grad():
                if loss_v_old is None:
                    loss_v_old = value_loss(self.ac, batch["obs"], batch["ret"], normalized=True)
                metrics = value_metrics(self.ac, batch, loss_v_old)
        return {k: float(v) for k, v in metrics.items()}


def _as_tensors(batch):
    """numpy arrays -> torch tensors sharing their memory."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
