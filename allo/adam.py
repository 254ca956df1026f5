"""Adam on the learner's one flat (S, P) parameter tensor, through torch's fused kernel.

It is the kernel `torch.optim.Adam(fused=True)` runs, without the optimiser's per-step
Python bookkeeping (grouping tensors by device, lazy state, hooks), a visible share of a
CPU step (BENCHMARKS.md, "Training"). The learning rate is a tensor on the parameter's
device, so a captured CUDA graph reads its current value; the moments exist from the
start (zeros and step 0 are exactly Adam's initial state), so a graph never captures
their allocation. The kernel is private (`torch._fused_adam_`, in torch 2.4-2.13):
without it the same update runs as public tensor ops (`step_by_tensor_ops`).
"""

from __future__ import annotations

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8
MOMENTS = ("exp_avg", "exp_avg_sq")  # parameter-shaped state; "step" is one scalar


class FlatAdam:
    """Adam for one parameter tensor and its gradient tensor; `state` holds step,
    exp_avg and exp_avg_sq by those names (torch.optim.Adam's), as checkpoints store."""

    def __init__(self, param: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor):
        self.param, self.grad, self.lr = param, grad, lr
        self.state = {
            "step": torch.zeros((), dtype=torch.float32, device=param.device),
            "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
        }

    @torch.no_grad()
    def step(self) -> None:
        state = self.state
        state["step"].add_(1)
        if not hasattr(torch, "_fused_adam_"):  # a private kernel: a later torch may drop it
            self.step_by_tensor_ops()
            return
        torch._fused_adam_(
            [self.param], [self.grad], [state["exp_avg"]], [state["exp_avg_sq"]],
            [], [state["step"]], lr=self.lr, beta1=BETAS[0], beta2=BETAS[1],
            weight_decay=0.0, eps=EPS, amsgrad=False, maximize=False)

    @torch.no_grad()
    def step_by_tensor_ops(self) -> None:
        """The same update as the fused kernel (torch.optim.Adam's formula), in public
        tensor ops that never read a value on the host, so a CUDA graph can hold them;
        `step` has been counted already."""
        beta1, beta2 = BETAS
        step, exp_avg, exp_avg_sq = (self.state[k] for k in ("step", *MOMENTS))
        exp_avg.lerp_(self.grad, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1.0 - beta2)
        bias1 = 1.0 - torch.pow(beta1, step)
        bias2 = 1.0 - torch.pow(beta2, step)
        denominator = (exp_avg_sq.sqrt() / bias2.sqrt()).add_(EPS)
        self.param.sub_(exp_avg / denominator * (self.lr / bias1))

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a saved state in place (a captured graph keeps the tensors' addresses)."""
        for key, tensor in self.state.items():
            tensor.copy_(state[key])

    def reset(self) -> None:
        """Adam's initial state: what a checkpoint written before its first step means."""
        for tensor in self.state.values():
            tensor.zero_()
