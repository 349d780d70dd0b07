"""TensorFlow trainer: ``tf.function`` + ``GradientTape``, value loop inside the graph.

Per env step the cost is the call, not the arithmetic (HalfCheetah-v5, (64, 64)
MLP, batch 1, this 2-core machine):

- XLA (``jit_compile=True``) for the policy step, the value call and the
  single-process update: ~20 % faster than plain graphs.
- ``tf.function.__call__`` spends ~120 us in Python matching the arguments to
  the input signature, and a tensor made by ``tf.convert_to_tensor`` costs
  ~40 us more than one made on the function's device: see :class:`_FastCall`
  (~75 us per step in total, from ~320 us).
- One packed ``uint32`` output (action and log-prob bit-cast and
  concatenated): one device-to-host copy instead of two.
- Even so, a call costs ~75 us, so inside a collection plain-MLP policies are
  sampled in numpy (:class:`~keras_vpg.trainers.base.Trainer`,
  :mod:`~keras_vpg.trainers.numpy_policy`, ~15 us): CartPole-v1 with one env,
  ~100 -> ~45 us per env step. Other models keep the XLA call.

The value steps overlap with the next collection
(:attr:`BackendTrainer.overlaps_collection`) when sampling runs in numpy: 1 env,
CartPole-v1 epochs 268 -> 193 ms, HalfCheetah-v5 432 -> 371 ms. With XLA
sampling calls (other models) they would not: the XLA update and the XLA calls
serialize (HalfCheetah-v5 886 -> 894 ms).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_vpg.trainers.base import (
    Trainer,
    flat_concat,
    padded_rows,
    policy_loss,
    policy_metrics,
    split_like,
    unpack_sample,
    update_shards,
    value_loss,
    value_metrics,
)

_FLOAT32 = tf.float32.as_datatype_enum


def configure_threads(threads: int | None) -> dict[str, str]:
    """Single-threaded Eigen inside XLA kernels; pool sizes only if ``threads`` is given.

    ``--xla_cpu_multi_thread_eigen=false`` is added to ``XLA_FLAGS`` (unless that
    flag is already there): XLA then stops splitting the small matmuls of a
    batch-8 policy call across threads (190 -> 65 us per call, 8 envs) while
    the update keeps its parallel row blocks (91 ms either way; a one-thread
    intra-op pool would cost 130 ms). It must precede TensorFlow's first XLA
    compilation. With ``threads``: that many intra-op threads and one inter-op
    thread, unless ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` are set.
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


class _FastCall:
    """Calls a traced ``tf.function`` with numpy observations, cheaply.

    ``fn`` must have a full ``input_signature`` of one float32 tensor. Two private
    TensorFlow entry points save ~100 us per call: the concrete function's flat
    call (no argument matching) and an ``EagerTensor`` made directly on the
    function's device (``tf.convert_to_tensor`` costs ~17 us, and its host tensor
    another ~25 us inside the call). If either is missing or fails before
    running, this falls back to the public concrete-function call for good.
    """

    def __init__(self, fn):
        self.concrete = fn.get_concrete_function()
        self._flat = None
        self._eager_tensor = None
        try:
            from tensorflow.python.framework.ops import EagerTensor

            self._captured = list(self.concrete.captured_inputs)
            device = self._captured[0].device if self._captured else ""
            self._device = device or "/job:localhost/replica:0/task:0/device:CPU:0"
            self._eager_tensor = EagerTensor
            self._flat = self.concrete._inference_function.call_flat
        except (ImportError, AttributeError):  # pragma: no cover - other TensorFlow versions
            self._flat = None

    def tensor(self, array: np.ndarray):
        """A float32 ``array`` as an eager tensor on the function's device."""
        if self._eager_tensor is not None:
            try:
                return self._eager_tensor(array, self._device, _FLOAT32)
            except (TypeError, ValueError):  # pragma: no cover
                self._eager_tensor = None
        return tf.convert_to_tensor(array, tf.float32)

    def __call__(self, x: np.ndarray):
        x = self.tensor(np.asarray(x, dtype=np.float32))
        if self._flat is not None:
            try:
                return self._flat(x, *self._captured)
            except (AttributeError, TypeError, ValueError):  # raised before running
                self._flat = None
        out = self.concrete(x)
        return out if isinstance(out, (list, tuple)) else [out]


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`."""

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce)
        obs_spec = tf.TensorSpec((None, *ac.observation_shape), tf.float32)
        self._action_spec = None  # (shape per row, numpy dtype), recorded while tracing
        self._sample = _FastCall(
            tf.function(self._packed_sample, input_signature=[obs_spec], jit_compile=True)
        )
        self._action_shape, self._action_dtype = self._action_spec
        self.overlaps_collection = self._numpy_sampler is not None
        self._value = _FastCall(
            tf.function(ac.value, input_signature=[obs_spec], jit_compile=True)
        )
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

    def compiled_sample(self, obs):
        bits = self._sample(obs)[0].numpy()
        return unpack_sample(bits, obs.shape[0], self._action_shape, self._action_dtype)

    def value(self, obs):
        obs, rows = padded_rows(obs)
        return self._value(obs)[0].numpy()[:rows]

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
        loss_v_old = value_loss(ac, batch["obs"], batch["ret"], normalized=True)
        for _ in tf.range(self.train_v_iters):
            with tf.GradientTape() as tape:
                loss_v = value_loss(ac, batch["obs"], batch["ret"], self._shards, normalized=True)
            grads = tape.gradient(loss_v, self.v_variables)
            self.vf_optimizer.apply(self._averaged(grads, self.v_variables), self.v_variables)
        return value_metrics(ac, batch, loss_v_old)
