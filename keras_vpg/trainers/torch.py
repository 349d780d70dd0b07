"""PyTorch trainer: autograd on the Keras variables; allreduce on the gradient buffers.

Keras layers called eagerly dispatch each op through ``keras.ops``, which costs
more per env step than the network's arithmetic; plain-MLP policies are
therefore sampled in numpy during collection (:mod:`keras_vpg.trainers.numpy_policy`), and
values of MLP value functions, and the value regression, run as plain ``torch``
ops (``addmm`` + activation per Dense layer) on the Keras variables' own
storage. Other models keep the Keras path.

With an MLP value function and Keras's plain Adam, the value steps run as one
TorchScript call (:class:`FusedValueSteps`) that holds no GIL, so they overlap
with the next epoch's collection (:meth:`BackendTrainer.overlaps_with`):
eager, their ~30 framework calls per step each waited for the GIL that the env
loop holds, and overlapping gained nothing. It reads Keras Adam's slot
variables through :mod:`keras_vpg.trainers.compat`. Other optimizers, other
value networks and MPI runs (gradients averaged at every step) take the eager
path, not overlapped. Measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import keras
import numpy as np
import torch

from keras_vpg.mpi import usable_cores
from keras_vpg.trainers import compat, numpy_policy
from keras_vpg.trainers.base import (
    Trainer,
    flat_concat,
    policy_loss,
    policy_metrics,
    split_like,
    value_loss,
)

#: Activations of plain-MLP layers: name -> (code for :func:`_activate`, the torch
#: function of eager calls, ``None`` for linear). TorchScript takes no callables.
_ACTIVATIONS = {
    "tanh": (0, torch.tanh), "relu": (1, torch.relu), "sigmoid": (2, torch.sigmoid),
    "linear": (3, None), "elu": (4, torch.nn.functional.elu),
    "gelu": (5, torch.nn.functional.gelu), "silu": (6, torch.nn.functional.silu),
}


def _activate(x: torch.Tensor, code: int) -> torch.Tensor:
    if code == 0:
        return torch.tanh(x)
    if code == 1:
        return torch.relu(x)
    if code == 2:
        return torch.sigmoid(x)
    if code == 4:
        return torch.nn.functional.elu(x)
    if code == 5:
        return torch.nn.functional.gelu(x)
    if code == 6:
        return torch.nn.functional.silu(x)
    return x


#: Intra-op threads of the update, when keras-vpg chose the thread count (else ``None``).
_update_threads: int | None = None


def configure_threads(threads: int | None) -> dict[str, str]:
    """One intra-op thread while collecting (``threads`` if given), one inter-op thread.

    Skipped when ``OMP_NUM_THREADS`` is set (the user chose). At batch 1-8 a
    second thread only adds OpenMP hand-offs, and while the env steps on the
    other core it spin-waits against it. The parts of the update run on the
    main thread (no env running) then use every usable core unless ``threads``
    was given (two cores instead of one speed up the eager update). Value steps
    overlapping a collection keep its one thread (the thread count is
    process-wide, and the env needs the other core).
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


def _run(steps, x):
    """Apply ``steps`` (torch tensors, see :func:`_tensors`) to a batch ``x``."""
    for step in steps:
        if step == "flatten":
            x = x.reshape(x.shape[0], -1)
            continue
        kernel, bias, activation = step
        x = torch.addmm(bias, x, kernel) if bias is not None else x @ kernel
        x = x if activation is None else activation(x)
    return x


def _tensors(steps):
    """``steps`` with each Keras variable replaced by its torch tensor and each
    activation name by its torch function (Keras assigns a torch variable in place,
    ``copy_``, so the tensors stay current)."""
    out = []
    for step in steps:
        if step == "flatten":
            out.append(step)
            continue
        kernel, bias, name = step
        out.append((kernel.value, None if bias is None else bias.value, _ACTIVATIONS[name][1]))
    return out


def _adam_value_steps(
    obs: torch.Tensor,
    ret: torch.Tensor,
    params: list[torch.Tensor],
    activations: list[int],
    momentums: list[torch.Tensor],
    velocities: list[torch.Tensor],
    iterations: torch.Tensor,
    learning_rate: torch.Tensor,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    steps: int,
) -> torch.Tensor:
    """``steps`` Adam steps on the MSE of an MLP's output against ``ret``; returns the first loss.

    ``params`` are ``[kernel_0, bias_0, kernel_1, ...]`` of Dense layers with
    ``activations`` (codes of :data:`_ACTIVATIONS`); ``obs (M, D)``, ``ret (M,)``.
    The Adam step is the maths of Keras's PyTorch ``Adam`` (same operations, same
    order): ``momentums``, ``velocities`` and ``iterations`` are that optimizer's
    state, updated in place here except ``iterations`` (the caller adds ``steps``).
    """
    first_loss = torch.zeros((), dtype=obs.dtype)
    beta_1_t = torch.tensor(beta_1, dtype=obs.dtype)
    beta_2_t = torch.tensor(beta_2, dtype=obs.dtype)
    for step in range(steps):
        x = obs
        for layer in range(len(activations)):
            x = torch.addmm(params[2 * layer + 1], x, params[2 * layer])
            x = _activate(x, activations[layer])
        loss = torch.mean(torch.square(x.reshape(-1) - ret))
        if step == 0:
            first_loss = loss.detach()
        grads = torch.autograd.grad([loss], params)
        with torch.no_grad():
            local_step = (iterations + (step + 1)).to(obs.dtype)
            alpha = learning_rate * torch.sqrt(1 - torch.pow(beta_2_t, local_step)) / (
                1 - torch.pow(beta_1_t, local_step)
            )
            for i in range(len(params)):
                grad = grads[i]
                assert grad is not None
                momentums[i].mul_(beta_1).add_(grad, alpha=1 - beta_1)
                velocities[i].mul_(beta_2).add_(grad * grad, alpha=1 - beta_2)
                update = (momentums[i] * alpha) / (torch.sqrt(velocities[i]) + epsilon)
                params[i].add_(update, alpha=-1)
    return first_loss


class FusedValueSteps:
    """The value steps as one TorchScript call, for a plain MLP value net and plain Keras Adam.

    Eager, each of the ~80 steps is ~30 framework calls from Python, and a thread
    that makes them waits for the GIL at every call while the env loop holds it:
    overlapped with collection, the value steps then gained nothing. One scripted
    call runs the whole loop without the GIL. TorchScript's graph optimizer is
    turned off for the call: its
    symbolic derivatives (tanh's as mul/neg/add) are slower than eager
    autograd's kernels. The optimizer stays Keras's: its configuration, its
    variables (saved with it), its step counter; this only runs its Adam update.

    Use :meth:`for_model`; ``None`` means the eager path applies.
    """

    def __init__(self, steps, params, optimizer, script, adam_state):
        self._script = script
        self._optimizer = optimizer
        # The script's tensor arguments, read once: Keras assigns a torch variable in
        # place (``copy_``), so these stay the variables' storage.
        self._tensors = (
            [v.value for v in params], [_ACTIVATIONS[name][0] for _, _, name in steps],
            [v.value for v in adam_state["momentums"]],
            [v.value for v in adam_state["velocities"]],
            optimizer.iterations.value, adam_state["learning_rate"].value.detach(),
        )

    @classmethod
    def for_model(cls, ac, v_steps, optimizer) -> FusedValueSteps | None:
        """The fused steps for ``ac``'s value net and ``optimizer``; ``None`` if they do not apply.

        ``v_steps`` is :func:`numpy_policy.mlp_layers` of ``ac.v_net``. They apply
        to Flatten-first or plain stacks of biased float32 Dense layers sharing no
        variable with the policy (the value steps, in the background, would change
        weights the next collection samples with), trained by :func:`_plain_adam`
        optimizers.
        """
        if v_steps is None or not _plain_adam(optimizer):
            return None
        steps = v_steps[1:] if v_steps and v_steps[0] == "flatten" else v_steps
        if not steps or "flatten" in steps:
            return None
        params = [v for step in steps for v in step[:2]]
        if (
            any(v is None or v.constraint is not None or v.dtype != "float32" for v in params)
            or {id(v) for v in params} != {id(v) for v in ac.v_variables}
            or ac.shared_variables
        ):
            return None
        adam_state = compat.keras_adam_state(optimizer, params)  # private Keras slots
        if adam_state is None:
            return None
        script = _scripted_value_steps()
        return None if script is None else cls(steps, params, optimizer, script, adam_state)

    def applies(self) -> bool:
        """Whether the optimizer is still plain Adam (a callback may have changed it)."""
        return _plain_adam(self._optimizer)

    def __call__(self, obs: torch.Tensor, ret: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` value steps on ``obs (M, *O)``, ``ret (M,)``; returns the loss before them."""
        optimizer = self._optimizer
        with torch.jit.optimized_execution(False):  # thread-local: only this call
            first_loss = self._script(obs.reshape(obs.shape[0], -1), ret, *self._tensors,
                                      float(optimizer.beta_1), float(optimizer.beta_2),
                                      float(optimizer.epsilon), steps)
        optimizer.iterations.assign_add(steps)
        return first_loss


#: Adam options whose step the fused loop does not take (each must be off: None, False, 0).
_ADAM_EXTRAS = ("amsgrad", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
                "gradient_accumulation_steps", "loss_scale_factor")


def _plain_adam(optimizer) -> bool:
    """Whether ``optimizer`` is Keras's own Adam with nothing its update step would add."""
    return (isinstance(optimizer, keras.optimizers.Adam)
            and type(optimizer).__module__.startswith("keras.")
            and all(getattr(optimizer, a, None) in (None, False, 0) for a in _ADAM_EXTRAS))


_SCRIPT = None


def _scripted_value_steps():
    """:func:`_adam_value_steps` compiled by TorchScript, once (``None`` if it cannot be).

    Compiled and run once on a tiny network here, so that a torch whose
    TorchScript is missing or broken falls back to the eager path with a warning
    instead of failing in the middle of a fit.
    """
    global _SCRIPT
    if _SCRIPT is None:
        try:
            with warnings.catch_warnings():
                # Deprecated in favour of torch.compile/export, neither of which
                # runs a loop of autograd steps as one GIL-free call.
                warnings.simplefilter("ignore", DeprecationWarning)
                script = torch.jit.script(_adam_value_steps)
            if not isinstance(script, torch.jit.ScriptFunction):
                raise TypeError(f"torch.jit.script returned {type(script).__name__}")
            params = [torch.ones(1, 1, requires_grad=True), torch.zeros(1, requires_grad=True)]
            with torch.jit.optimized_execution(False):
                script(torch.ones(2, 1), torch.zeros(2), params, [0],
                       [torch.zeros(1, 1), torch.zeros(1)], [torch.zeros(1, 1), torch.zeros(1)],
                       torch.zeros((), dtype=torch.int64), torch.tensor(0.1), 0.9, 0.999, 1e-7, 1)
            _SCRIPT = script
        except Exception as error:  # noqa: BLE001 - any failure: the eager path still works
            warnings.warn(
                f"keras-vpg: PyTorch value steps run eagerly and do not overlap collection "
                f"(TorchScript unavailable: {error!r})",
                RuntimeWarning,
                stacklevel=2,
            )
            _SCRIPT = False
    return _SCRIPT or None


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`.

    Values of MLP value functions run as plain torch ops (see
    :func:`numpy_policy.mlp_layers`) on the Keras variables' own tensors. The policy
    step runs through Keras with autograd; the value steps as one TorchScript call
    when :class:`FusedValueSteps` applies, else as plain torch ops (MLPs) or Keras,
    stepped by the Keras optimizer.
    """

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None,
                 fast_paths=True):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce, fast_paths)
        # Without fast paths: values and value steps through Keras, stepped eagerly.
        self._v_steps = numpy_policy.mlp_layers(ac.v_net, _ACTIVATIONS) if fast_paths else None
        self._v_tensors = None if self._v_steps is None else _tensors(self._v_steps)
        # Under MPI every rank has its core: no extra threads for the update; and
        # each step's gradients are averaged across ranks, so no fused loop.
        self._update_threads = _update_threads if allreduce is None else None
        self._fused_value_steps = (
            FusedValueSteps.for_model(ac, self._v_steps, vf_optimizer)
            if allreduce is None else None
        )

    def overlaps_with(self, sampler_path):
        # Only a GIL-free value loop runs well beside the env loop.
        return self._fused_value_steps is not None

    # -- collection ---------------------------------------------------------------------
    def sample(self, obs):
        with torch.no_grad():
            action, logp = self.ac.sample_tensors(torch.as_tensor(obs, dtype=torch.float32))
        return action.numpy(), logp.numpy()

    def value(self, obs):
        x = torch.from_numpy(np.asarray(obs, dtype=np.float32))
        with torch.no_grad():
            if self._v_steps is None:
                return self.ac.value(x).numpy()
            return _run(self._v_tensors, self.ac.normalize(x)).reshape(-1).numpy()

    # -- update -------------------------------------------------------------------------
    def _gradient_step(self, loss, variables, optimizer):
        grads = list(torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True))
        if self.allreduce is not None:  # averaged across ranks: one flat buffer per step
            flat = self.allreduce(flat_concat(grads).numpy())
            grads = split_like(torch.from_numpy(flat), variables)
        with torch.no_grad():
            optimizer.apply(grads, variables)

    def _value_loss(self, batch):
        """MSE of V against the returns; plain torch for MLPs (same maths as value_loss)."""
        if self._v_steps is None:
            return value_loss(self.ac, batch["obs"], batch["ret"])
        predicted = _run(self._v_tensors, batch["obs"]).reshape(-1)
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
            fused = self._fused_value_steps
            if fused is not None and fused.applies() and self.train_v_iters > 0:
                loss_v_old = fused(batch["obs"], batch["ret"], self.train_v_iters)
            else:
                loss_v_old = self._eager_value_steps(batch)
            with torch.no_grad():  # measured after the steps, as value_metrics does
                loss_v_new = self._value_loss(batch)
        return {"LossV": float(loss_v_old), "DeltaLossV": float(loss_v_new - loss_v_old)}

    def _eager_value_steps(self, batch):
        """The value steps one by one, stepped by the Keras optimizer; the loss before them."""
        loss_v = self._value_loss(batch)
        loss_v_old = loss_v.detach()
        for step in range(self.train_v_iters):
            if step > 0:
                loss_v = self._value_loss(batch)
            self._gradient_step(loss_v, self.v_variables, self.vf_optimizer)
        return loss_v_old


def _as_tensors(batch):
    """numpy arrays -> torch tensors sharing their memory."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
