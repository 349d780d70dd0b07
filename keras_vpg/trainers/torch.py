"""PyTorch trainer: autograd on the Keras variables; allreduce on the gradient buffers."""

from __future__ import annotations

import math

import keras
import numpy as np
import torch

from keras_vpg.trainers.base import Trainer, metrics_after_update, policy_loss, value_loss

_TORCH_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
                      "linear": None, "elu": torch.nn.functional.elu,
                      "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def plain_torch_mlp(net: keras.Model):
    """``obs -> output`` in plain torch ops on ``net``'s own weights, or ``None``.

    Keras layers called eagerly cost ~1 ms per env step on this backend (op
    dispatch through keras.ops); a chain of Flatten/Dense layers run as plain
    ``torch`` ops costs ~50 us. Only single-input, single-output models made of
    Flatten and Dense layers (with a known activation) qualify; any other model
    keeps the Keras path.
    """
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        return None
    steps = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Flatten):
            steps.append(("flatten", None, None, None))
        elif isinstance(layer, keras.layers.Dense):
            name = keras.activations.serialize(layer.activation)
            name = name if isinstance(name, str) else getattr(layer.activation, "__name__", "")
            if name not in _TORCH_ACTIVATIONS:
                return None
            bias = layer.bias if layer.use_bias else None
            steps.append(("dense", layer.kernel, bias, _TORCH_ACTIVATIONS[name]))
        else:
            return None

    def forward(x):
        for kind, kernel, bias, activation in steps:
            if kind == "flatten":
                x = x.reshape(x.shape[0], -1)
                continue
            x = x @ kernel.value
            if bias is not None:
                x = x + bias.value
            if activation is not None:
                x = activation(x)
        return x

    return forward


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`.

    Collection runs the networks as plain torch ops when they are MLPs (see
    :func:`plain_torch_mlp`), sampling with a ``torch.Generator`` seeded from the
    model's ``SeedGenerator``; the update runs through Keras with autograd.
    """

    def __init__(self, ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce=None):
        super().__init__(ac, pi_optimizer, vf_optimizer, train_v_iters, allreduce)
        self._pi_forward = plain_torch_mlp(ac.pi_net)
        self._v_forward = plain_torch_mlp(ac.v_net)
        seed_state = keras.ops.convert_to_numpy(ac.seed_generator.state)
        self._generator = torch.Generator().manual_seed(int(seed_state[0]))

    def _normalized(self, obs):
        obs = torch.as_tensor(obs, dtype=torch.float32)
        norm = self.ac.obs_normalizer
        if norm is None:
            return obs
        z = (obs - norm.mean.value) / torch.sqrt(norm.var.value + 1e-8)
        return torch.clamp(z, -norm.clip, norm.clip)

    @torch.no_grad()
    def policy_step(self, obs):
        if self._pi_forward is None or self._v_forward is None:
            action, value, logp = self.ac.step_tensors(torch.as_tensor(obs, dtype=torch.float32))
            return action.numpy(), value.numpy(), logp.numpy()
        x = self._normalized(obs)
        out = self._pi_forward(x)
        value = self._v_forward(x).reshape(-1)
        # Same distributions as keras_vpg.distributions, in plain torch for speed.
        if self.ac.discrete:
            log_probs = torch.log_softmax(out, dim=-1)
            action = torch.multinomial(log_probs.exp(), 1, generator=self._generator)
            logp = log_probs.gather(1, action).reshape(-1)
            action = action.reshape(-1).to(torch.int32)
        else:
            log_std = self.ac.log_std.value
            noise = torch.randn(out.shape, generator=self._generator)
            action = out + torch.exp(log_std) * noise
            logp = (-0.5 * noise.square() - log_std - _HALF_LOG_2PI).sum(-1)
        return action.numpy(), value.numpy(), logp.numpy()

    @torch.no_grad()
    def value(self, obs):
        if self._v_forward is None:
            return self.ac.value(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        return self._v_forward(self._normalized(obs)).reshape(-1).numpy()

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

    def _value_loss(self, normalized_obs, batch):
        """MSE of V against the returns; plain torch for MLPs (same maths as value_loss)."""
        if self._v_forward is None:
            return value_loss(self.ac, batch["obs"], batch["ret"])
        predicted = self._v_forward(normalized_obs).reshape(-1)
        return torch.mean(torch.square(predicted - batch["ret"]))

    def update(self, batch):
        ac = self.ac
        batch = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        loss_pi, _, entropy = policy_loss(ac, batch["obs"], batch["act"], batch["adv"])
        self._gradient_step(loss_pi, self.pi_variables, self.pi_optimizer)

        loss_v_old = None
        with torch.no_grad():
            x = self._normalized(batch["obs"])  # the normalizer is not trained
        for _ in range(self.train_v_iters):
            loss_v = self._value_loss(x, batch)
            loss_v_old = loss_v.detach() if loss_v_old is None else loss_v_old
            self._gradient_step(loss_v, self.v_variables, self.vf_optimizer)
        with torch.no_grad():
            if loss_v_old is None:
                loss_v_old = value_loss(ac, batch["obs"], batch["ret"])
            metrics = metrics_after_update(
                ac, batch, loss_pi.detach(), loss_v_old, entropy.detach()
            )
        return {k: float(v) for k, v in metrics.items()}
