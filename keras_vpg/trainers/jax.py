"""JAX trainer: ``jit`` over stateless calls; the value loop is a ``lax.fori_loop``.

Plain-MLP policies are sampled in numpy during collection
(:mod:`keras_vpg.trainers.numpy_policy`). Other models use the jitted sampling call, whose
speed at batch 1-8 on CPU is set by XLA's CPU runtime rather than the arithmetic:

- ``jax_cpu_enable_async_dispatch`` off (set by :func:`configure_threads`
  when the first VPG is built, before JAX starts) runs each call on the
  calling thread instead of handing it to a worker and waiting;
- XLA's memory-optimized scheduler (a per-function compiler option) orders the
  pi net, v net and sampling as one chain, which XLA's thunk executor then runs
  inline instead of spreading independent branches over its thread pool;
- one packed ``uint32`` output (seed state, action, log-prob bit-cast and
  concatenated): one host transfer instead of three.

The value steps release the GIL while XLA runs them, so they overlap well with
the next epoch's collection (:meth:`BackendTrainer.overlaps_with`).
Measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from keras import StatelessScope

from keras_vpg.trainers import compat
from keras_vpg.trainers.base import (
    Trainer,
    flat_concat,
    policy_loss,
    policy_metrics,
    split_like,
    unpack_sample,
    update_shards,
    value_loss,
    value_metrics,
)

#: XLA compiler options of the small per-step functions (see the module docstring).
SMALL_CALL_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def configure_threads(threads: int | None) -> dict[str, str]:
    """Synchronous CPU dispatch (``jax_cpu_enable_async_dispatch=False``).

    Each call then runs on the calling thread instead of being handed to a
    worker and waited for. Skipped when
    ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` is set, or when the CPU client already
    exists (the flag is read when it is made). XLA's own threads follow the CPU
    affinity (``taskset``); ``threads`` is not used.
    """
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ or compat.jax_cpu_client_started():
        return {}
    try:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    except (AttributeError, ValueError):  # pragma: no cover - a JAX without the flag
        return {}
    return {"jax_cpu_enable_async_dispatch": "False"}


def _jit_small(fn):
    """``jax.jit`` with :data:`SMALL_CALL_OPTIONS`, or plain ``jit`` if this JAX lacks them."""
    try:
        return jax.jit(fn, compiler_options=SMALL_CALL_OPTIONS)
    except TypeError:  # pragma: no cover - JAX without per-function compiler options
        return jax.jit(fn)


def _as_32bit(x):
    """``x`` itself if its dtype has 32 bits, else cast to float32 / int32."""
    if x.dtype.itemsize == 4:
        return x
    return x.astype(jnp.float32 if jnp.issubdtype(x.dtype, jnp.floating) else jnp.int32)


def _as_u32(x):
    """Bits of ``x`` as a flat ``uint32`` vector (exact for 32-bit dtypes)."""
    x = _as_32bit(x)
    if x.dtype != jnp.uint32:
        x = jax.lax.bitcast_convert_type(x, jnp.uint32)
    return jnp.reshape(x, (-1,))


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`.

    Parameters live in Keras variables; the jitted functions take their values
    and return new ones, which are written back (as Keras's own JAX trainer
    does). During a collection the values are read once (a list cached here)
    and the sampling seed state is carried in that list, then written back to
    the model's ``SeedGenerator`` at the end, so sampling continues exactly
    where it would have.
    """

    def overlaps_with(self, sampler_path):
        return True

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None,
                 fast_paths=True):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce, fast_paths)
        self.variables = list(ac.variables)
        self.seed_state = ac.seed_generator.state
        self._seed_index = next(i for i, v in enumerate(self.variables) if v is self.seed_state)
        self._seed_size = int(np.prod(self.seed_state.shape))
        jit_small = _jit_small if fast_paths else jax.jit
        self._sample = jit_small(self._stateless_sample)
        self._value = jit_small(self._stateless_value)
        self._update_policy = jax.jit(self._stateless_update_policy)
        self._update_value = jax.jit(self._stateless_update_value)
        self._collection_values = None
        self._action_spec = None  # (shape per row, numpy dtype), recorded while tracing

    # -- collection ---------------------------------------------------------------------
    def _mapping(self, values):
        return list(zip(self.variables, values))

    def _stateless_sample(self, values, obs):
        with StatelessScope(state_mapping=self._mapping(values)) as scope:
            action, logp = self.ac.sample_tensors(obs.astype("float32"))
            seed = scope.get_current_value(self.seed_state)
        action = _as_32bit(action)
        self._action_spec = (tuple(action.shape[1:]), np.dtype(action.dtype))
        return jnp.concatenate([_as_u32(seed), _as_u32(action), _as_u32(logp)])

    def _stateless_value(self, values, obs):
        with StatelessScope(state_mapping=self._mapping(values)):
            return self.ac.value(obs.astype("float32"))

    def begin_collection(self):
        self._collection_values = [v.value for v in self.variables]

    def end_collection(self):
        if self._collection_values is not None:
            self.seed_state.assign(self._collection_values[self._seed_index])
        self._collection_values = None

    def sample(self, obs):
        # Outside a collection: read the variables here, write the seed back below.
        values = self._collection_values or [v.value for v in self.variables]
        out = np.asarray(self._sample(values, obs))
        values[self._seed_index] = out[: self._seed_size]
        if self._collection_values is None:
            self.seed_state.assign(values[self._seed_index])
        return unpack_sample(out[self._seed_size :], obs.shape[0], *self._action_spec)

    def value(self, obs):
        values = self._collection_values or [v.value for v in self.variables]
        return np.asarray(self._value(values, np.asarray(obs, dtype=np.float32)))

    # -- update -------------------------------------------------------------------------
    def _averaged(self, grads):
        if self.allreduce is None:
            return grads
        flat = flat_concat(grads)
        # Ordered so that every rank issues its MPI calls in the same sequence.
        shape = jax.ShapeDtypeStruct(flat.shape, flat.dtype)
        averaged = io_callback(self.allreduce, shape, flat, ordered=True)
        return split_like(averaged, grads)

    def _with_values(self, values, idx, new, fn):
        """``fn()`` with the variables at ``idx`` set to ``new`` (the rest from ``values``)."""
        current = list(values)
        for i, value in zip(idx, new):
            current[i] = value
        with StatelessScope(state_mapping=self._mapping(current)):
            return fn()

    def _indices(self, variables):
        index = {id(v): i for i, v in enumerate(self.variables)}
        return [index[id(v)] for v in variables]

    def _stateless_update_policy(self, values, opt_values, batch):
        ac, idx = self.ac, self._indices(self.pi_variables)

        def loss_fn(pi_values):
            loss, _, entropy = self._with_values(
                values, idx, pi_values,
                lambda: policy_loss(ac, batch["obs"], batch["act"], batch["adv"]),
            )
            return loss, entropy

        pi_values = [values[i] for i in idx]
        (loss_pi, entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(pi_values)
        pi_values, opt_values = self.pi_optimizer.stateless_apply(
            opt_values, self._averaged(grads), pi_values
        )
        metrics = self._with_values(
            values, idx, pi_values, lambda: policy_metrics(ac, batch, loss_pi, entropy)
        )
        return pi_values, opt_values, metrics

    def _stateless_update_value(self, values, opt_values, batch):
        ac, idx = self.ac, self._indices(self.v_variables)
        shards = update_shards(self.allreduce)

        def loss_fn(v_values):
            return self._with_values(
                values, idx, v_values,
                lambda: value_loss(ac, batch["obs"], batch["ret"], shards),
            )

        def value_iteration(_, carry):
            v_values, opt_values = carry
            grads = jax.grad(loss_fn)(v_values)
            return self.vf_optimizer.stateless_apply(opt_values, self._averaged(grads), v_values)

        v_values = [values[i] for i in idx]
        loss_v_old = loss_fn(v_values)
        v_values, opt_values = jax.lax.fori_loop(
            0, self.train_v_iters, value_iteration, (v_values, opt_values)
        )
        metrics = self._with_values(
            values, idx, v_values, lambda: value_metrics(ac, batch, loss_v_old)
        )
        return v_values, opt_values, metrics

    def _run_update(self, update_fn, variables, optimizer, batch):
        """Run a jitted update; write back only ``variables`` and ``optimizer``'s state.

        (Writing back only its own variables is what lets the value steps run in
        another thread while collection advances the sampling seed.)
        """
        values = [v.value for v in self.variables]
        opt_values = [v.value for v in optimizer.variables]
        batch = {k: jnp.asarray(v) for k, v in batch.items()}
        new_values, new_opt, metrics = update_fn(values, opt_values, batch)
        for variable, value in zip(variables, new_values):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, new_opt):
            variable.assign(value)
        return {k: float(v) for k, v in metrics.items()}

    def update_policy(self, batch):
        return self._run_update(self._update_policy, self.pi_variables, self.pi_optimizer, batch)

    def update_value(self, batch):
        return self._run_update(self._update_value, self.v_variables, self.vf_optimizer, batch)
