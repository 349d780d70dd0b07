"""PyTorch trainer: autograd on the Keras variables; allreduce on the gradient buffers."""

from __future__ import annotations

import numpy as np
import torch

from keras_vpg.trainers.base import Trainer, metrics_after_update, policy_loss, value_loss


class BackendTrainer(Trainer):
    """See :class:`keras_vpg.trainers.base.Trainer`."""

    def policy_step(self, obs):
        with torch.no_grad():
            action, value, logp = self.ac.step_tensors(torch.as_tensor(obs, dtype=torch.float32))
        return action.numpy(), value.numpy(), logp.numpy()

    def value(self, obs):
        with torch.no_grad():
            return self.ac.value(torch.as_tensor(obs, dtype=torch.float32)).numpy()

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

    def update(self, batch):
        ac = self.ac
        batch = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        loss_pi, _, entropy = policy_loss(ac, batch["obs"], batch["act"], batch["adv"])
        self._gradient_step(loss_pi, self.pi_variables, self.pi_optimizer)

        loss_v_old = None
        for _ in range(self.train_v_iters):
            loss_v = value_loss(ac, batch["obs"], batch["ret"])
            loss_v_old = loss_v.detach() if loss_v_old is None else loss_v_old
            self._gradient_step(loss_v, self.v_variables, self.vf_optimizer)
        with torch.no_grad():
            if loss_v_old is None:
                loss_v_old = value_loss(ac, batch["obs"], batch["ret"])
            metrics = metrics_after_update(
                ac, batch, loss_pi.detach(), loss_v_old, entropy.detach()
            )
        return {k: float(v) for k, v in metrics.items()}
