"""TensorFlow trainer: ``tf.function`` + ``GradientTape``, value loop inside the graph.

- XLA (``jit_compile=True``) for the value call and the single-process update
  (faster than plain graphs); the batched sampling call (models the numpy
  sampler does not cover) is a traced concrete function called directly.
- One packed ``uint32`` sampling output (action and log-prob bit-cast and
  concatenated): one device-to-host copy instead of two.
- Plain-MLP policies are sampled in numpy during collection
  (:mod:`keras_vpg.trainers.numpy_policy`): a TensorFlow call's fixed cost dominates a small
  policy at a few observations per call.

The value steps overlap with the next collection (:meth:`BackendTrainer.overlaps_with`)
only when sampling runs in numpy: the XLA update and XLA sampling calls
serialize. Measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

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


def configure_threads(threads: int | None) -> dict[str, str]:
    """Single-threaded Eigen inside XLA kernels; pool sizes only if ``threads`` is given.

    ``--xla_cpu_multi_thread_eigen=false`` is added to ``XLA_FLAGS`` (unless that
    flag is already there): XLA then stops splitting the small matmuls of a
    batch-8 policy call across threads while the update keeps its parallel row
    blocks (a one-thread intra-op pool would slow the update). It must precede
    TensorFlow's first XLA compilation. With ``threads``: that many intra-op
    threads and one inter-op thread, unless ``TF_NUM_INTRAOP_THREADS`` /
    ``TF_NUM_INTEROP_THREADS`` are set.
    """
    applied: dict[str, str] = {}
    xla_flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in xla_flags:
        os.environ["XLA_FLAGS"] = f"{xla_flags} --xla_cpu_multi_thread_eigen=false".strip()
        applied["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    if not threads:
        return applied
    try:
        if "TF_NUM_INTRAOP_THREADS" not in os.environ:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            applied["tf.intra_op_threads"] = str(threads)
        if "TF_NUM_INTEROP_THREADS" not in os.environ:
            tf.config.threading.set_inter_op_parallelism_threads(1)
            applied["tf.inter_op_threads"] = "1"
    except RuntimeError:  # the runtime has already started: settings are fixed
        pass
    return applied


def _as_32bit(x):
    """``x`` if its dtype has 32 bits, else cast to float32 / int32."""
    if x.dtype.size == 4:
        return x
    return tf.cast(x, tf.float32 if x.dtype.is_floating else tf.int32)


def _as_u32(x):
    """Bits of a 32-bit tensor as a flat ``uint32`` vector."""
    x = _as_32bit(x)
    if x.dtype != tf.uint32:
        x = tf.bitcast(x, tf.uint32)
    return tf.reshape(x, (-1,))


def _concrete(fn, signature):
    """``fn`` traced once for ``signature``: one float32 tensor in, one tensor out.

    Called through the concrete function (no per-call signature matching).
    """
    return tf.function(fn, input_signature=signature, jit_compile=True).get_concrete_function()


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`."""

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None,
                 fast_paths=True):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce, fast_paths)
        obs_spec = tf.TensorSpec((None, *ac.observation_shape), tf.float32)
        self._action_spec = None  # (shape per row, numpy dtype), recorded while tracing
        self._sample = _concrete(self._packed_sample, [obs_spec])
        self._value = _concrete(ac.value, [obs_spec])
        # The MPI allreduce is a numpy_function, which XLA cannot compile, so it
        # keeps the update off XLA.
        self._update_policy = tf.function(self._policy_graph, jit_compile=allreduce is None)
        self._update_value = tf.function(self._value_graph, jit_compile=allreduce is None)
        self._shards = update_shards(allreduce)

    # -- collection ---------------------------------------------------------------------
    def _packed_sample(self, obs):
        action, logp = self.ac.sample_tensors(obs)
        action = _as_32bit(action)
        self._action_spec = (tuple(action.shape[1:]), np.dtype(action.dtype.as_numpy_dtype))
        return tf.concat([_as_u32(action), _as_u32(logp)], axis=0)

    def overlaps_with(self, sampler_path):
        # The XLA update and XLA sampling calls serialize; numpy sampling does not.
        return sampler_path == "numpy-mlp"

    def sample(self, obs):
        bits = self._sample(tf.convert_to_tensor(obs, tf.float32)).numpy()
        return unpack_sample(bits, obs.shape[0], *self._action_spec)

    def value(self, obs):
        return self._value(tf.convert_to_tensor(obs, tf.float32)).numpy()

    def update_policy(self, batch):
        return self._call_update(self._update_policy, batch)

    def update_value(self, batch):
        return self._call_update(self._update_value, batch)

    @staticmethod
    def _call_update(fn, batch):
        tensors = {k: tf.convert_to_tensor(v) for k, v in batch.items()}
        return {k: float(v) for k, v in fn(tensors).items()}

    def _averaged(self, grads, variables):
        if self.allreduce is None:
            return grads
        # One flat buffer per step; the MPI call runs inside the graph.
        flat = tf.numpy_function(self.allreduce, [flat_concat(grads)], tf.float32, stateful=True)
        return split_like(flat, variables)

    def _policy_graph(self, batch):
        ac = self.ac
        with tf.GradientTape() as tape:
            loss_pi, _, entropy = policy_loss(ac, batch["obs"], batch["act"], batch["adv"])
        grads = self._averaged(tape.gradient(loss_pi, self.pi_variables), self.pi_variables)
        self.pi_optimizer.apply(grads, self.pi_variables)
        return policy_metrics(ac, batch, loss_pi, entropy)

    def _value_graph(self, batch):
        ac = self.ac
        loss_v_old = value_loss(ac, batch["obs"], batch["ret"])
        for _ in tf.range(self.train_v_iters):
            with tf.GradientTape() as tape:
                loss_v = value_loss(ac, batch["obs"], batch["ret"], self._shards)
            grads = tape.gradient(loss_v, self.v_variables)
            self.vf_optimizer.apply(self._averaged(grads, self.v_variables), self.v_variables)
        return value_metrics(ac, batch, loss_v_old)
