"""The hand-written training step (closed-form loss gradient, allo/model.py's backward,
allo/adam.py) is the step autograd and torch.optim.Adam would take."""

from __future__ import annotations

import pytest
import torch

from allo.config import TrainConfig
from allo.data import collect, empirical_pair_law, weight_source
from allo.layouts import load_builtin
from allo.learner import Learner
from allo.model import MLP
from allo.objective import allo_terms, ggdo_terms

SEEDS = [0, 1]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]


def small_learner(device: str = "cpu", **changes) -> Learner:
    layout = load_builtin("room4")
    cfg = TrainConfig(hidden_size=32, hidden_layers=2, num_gradient_steps=50,
                      lr_warmup_steps=5, **changes)
    laws = [empirical_pair_law(collect(layout, 50, 100, 100, seed=s), 0.8, layout.num_free)
            for s in SEEDS]
    return Learner(cfg, SEEDS, torch.device(device),
                   weight_source(laws, SEEDS, torch.device(device), cfg.batch_size),
                   torch.as_tensor(layout.coordinates(), device=device))


class AutogradReference:
    """The step as it was written with autograd: per-layer nn.Parameters, loss.backward(),
    each seed's gradient clipped, torch.optim.Adam; duals and barrier as the learner."""

    def __init__(self, learner: Learner):
        self.learner = learner
        named = learner.model.named(learner.model.flat)
        self.params = {name: torch.nn.Parameter(value.clone()) for name, value in named.items()}
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=1.0)
        self.duals, self.barrier = learner.duals.clone(), learner.barrier.clone()

    def step(self, weights, lr: float, dual_scale: float) -> None:
        cfg, layers = self.learner.cfg, self.learner.cfg.hidden_layers + 1
        hidden = self.learner.coords.expand(len(SEEDS), -1, -1)
        for layer in range(layers):
            hidden = torch.baddbmm(self.params[f"biases.{layer}"], hidden,
                                   self.params[f"weights.{layer}"])
            hidden = hidden.relu() if layer < layers - 1 else hidden
        if cfg.objective == "ggdo":
            terms = ggdo_terms(hidden, weights, self.barrier)
        else:
            terms = allo_terms(hidden, weights, self.duals, self.barrier)
        self.optimizer.zero_grad()
        terms.total.sum().backward()
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([torch.cat([g[s].flatten() for g in grads]).norm()
                             for s in range(len(SEEDS))])
        with torch.no_grad():
            for grad in grads:
                grad *= (cfg.max_grad_norm / (norms + 1e-6)).clamp(max=1.0).view(-1, 1, 1)
        self.optimizer.param_groups[0]["lr"] = lr
        self.optimizer.step()
        if cfg.objective == "allo":
            self.duals += terms.constraint * dual_scale * cfg.lr_duals
            grown = self.barrier + cfg.lr_barrier * dual_scale * terms.barrier_signal.clamp(
                min=0.0)
            self.barrier = grown.clamp(max=cfg.barrier_max)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("objective", ["allo", "ggdo"])
@pytest.mark.parametrize("batch_size", [None, 256], ids=["expectation", "sampled"])
def test_the_step_is_autograd_and_torch_adam(objective, batch_size, device):
    learner = small_learner(device, objective=objective, batch_size=batch_size)
    reference = AutogradReference(learner)
    drawn = []  # the reference sees the very batches the learner drew
    draw = learner.sampler.weights
    learner.sampler.weights = lambda count=None: drawn.append(draw(count)) or drawn[-1]
    for _ in range(8):
        learner.step()
        reference.step(drawn[-1], float(learner.lr), float(learner.dual_scale))
    named = learner.model.named(learner.model.flat)
    start = AutogradReference(small_learner(device)).params
    for name, param in reference.params.items():
        torch.testing.assert_close(named[name], param.detach(), rtol=1e-5, atol=1e-6)
        moved = (param.detach() - start[name]).abs().max()
        assert moved > 1e-4, name  # eight steps moved every parameter
    torch.testing.assert_close(learner.duals, reference.duals, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(learner.barrier, reference.barrier)
    # Adam's moments, as checkpoints store them, are torch.optim.Adam's, name by name
    for seed in range(len(SEEDS)):
        saved = learner.seed_state(seed)["adam"]
        for number, param in enumerate(reference.params.values()):
            state = reference.optimizer.state[param]
            assert float(saved[number]["step"]) == float(state["step"]) == 8
            for key in ("exp_avg", "exp_avg_sq"):
                # to within float32 rounding of the largest moment (squares of gradients
                # that differ in the last digits differ more, relatively, where tiny)
                expected = state[key][seed]
                torch.testing.assert_close(saved[number][key], expected, rtol=1e-5,
                                           atol=1e-5 * float(expected.abs().max()))


def test_backward_writes_autograds_parameter_gradients():
    """allo/model.py's chain rule against autograd, for an arbitrary output gradient."""
    model = MLP([3, 4], d=5, hidden_layers=3, hidden_size=16)
    coords = torch.rand(20, 2, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(2, 20, 5, generator=torch.Generator().manual_seed(1))
    model.backward(model.activations(coords), upstream)
    params = {name: value.clone().requires_grad_() for name, value in
              model.named(model.flat).items()}
    hidden = coords.expand(2, -1, -1)
    for layer in range(4):
        hidden = torch.baddbmm(params[f"biases.{layer}"], hidden, params[f"weights.{layer}"])
        hidden = hidden.relu() if layer < 3 else hidden
    (hidden * upstream).sum().backward()
    for name, grad in model.named(model.grad).items():
        torch.testing.assert_close(grad, params[name].grad, rtol=1e-5, atol=1e-6)
    assert model.grad.abs().min() < model.grad.abs().max()  # dead units give exact zeros


def test_checkpoints_keep_the_per_parameter_format():
    """A checkpoint names each weight and bias and stores Adam's moments per parameter, as
    the torch module and optimiser did, so runs saved before the flat storage resume."""
    learner = small_learner()
    for _ in range(3):
        learner.step()
    state = learner.seed_state(1)
    assert list(state["model"]) == [f"weights.{i}" for i in range(3)] + [
        f"biases.{i}" for i in range(3)]
    assert state["model"]["weights.1"].shape == (32, 32)
    assert state["model"]["biases.2"].shape == (1, 10)
    assert [entry["exp_avg"].shape for entry in state["adam"]] == [
        value.shape for value in state["model"].values()]
    fresh = small_learner()
    fresh.load_seed_states([learner.seed_state(0), state])
    torch.testing.assert_close(fresh.model.flat, learner.model.flat, rtol=0, atol=0)
    for key, value in learner.optimizer.state.items():
        torch.testing.assert_close(fresh.optimizer.state[key], value, rtol=0, atol=0)
    learner.step()
    fresh.step()
    torch.testing.assert_close(fresh.model.flat, learner.model.flat, rtol=0, atol=0)


def test_a_checkpoint_of_the_autograd_version_resumes_the_same_run():
    """Checkpoints written before this step (an nn.Module's parameters, torch.optim.Adam's
    state per parameter) load into the flat storage and the run goes on as it would have
    under autograd."""
    learner = small_learner()
    reference = AutogradReference(learner)
    drawn = []
    draw = learner.sampler.weights
    learner.sampler.weights = lambda count=None: drawn.append(draw(count)) or drawn[-1]
    for _ in range(4):
        learner.step()
        reference.step(drawn[-1], float(learner.lr), float(learner.dual_scale))
    old_style = []
    for seed in range(len(SEEDS)):
        state = learner.seed_state(seed)  # duals, barrier, sampler, counter: unchanged
        state["model"] = {name: param.detach()[seed].clone()
                          for name, param in reference.params.items()}
        state["adam"] = [{key: (value if key == "step" else value[seed]).clone()
                          for key, value in reference.optimizer.state[param].items()}
                         for param in reference.params.values()]
        old_style.append(state)
    resumed = small_learner()
    resumed.load_seed_states(old_style)
    for name, view in resumed.model.named(resumed.model.flat).items():
        torch.testing.assert_close(view, reference.params[name].detach(), rtol=0, atol=0)
    for _ in range(3):
        resumed.step()
        reference.step(resumed.sampler.weights(None), float(resumed.lr),
                       float(resumed.dual_scale))
    for name, view in resumed.model.named(resumed.model.flat).items():
        torch.testing.assert_close(view, reference.params[name].detach(), rtol=1e-5,
                                   atol=1e-6)


def test_a_checkpoint_from_before_adams_first_step_resets_it():
    """torch.optim.Adam saved no state before its first step (empty dicts): loading such a
    checkpoint gives Adam's initial state, whatever the learner held."""
    saved = small_learner().seed_state(0)
    saved["adam"] = [{} for _ in saved["adam"]]
    learner = small_learner()
    for _ in range(3):
        learner.step()
    learner.load_seed_states([saved, saved])
    assert float(learner.optimizer.state["step"]) == 0
    assert not learner.optimizer.state["exp_avg"].any()
    assert not learner.optimizer.state["exp_avg_sq"].any()


@pytest.mark.parametrize("device", DEVICES)
def test_adam_without_torchs_private_kernel_makes_the_same_update(device, monkeypatch):
    """torch._fused_adam_ is private: where a torch lacks it, FlatAdam falls back to
    public tensor ops with the same update (the eight-step comparison above ties the
    kernel to torch.optim.Adam)."""
    from allo.adam import FlatAdam

    generator = torch.Generator().manual_seed(0)
    start = torch.randn(2, 300, generator=generator).to(device)
    grads = [torch.randn(2, 300, generator=generator).to(device) for _ in range(8)]
    lr = torch.tensor(0.01, device=device)
    optimizers = []
    for fused in (True, False):
        if not fused:
            monkeypatch.delattr(torch, "_fused_adam_")
        param = start.clone()
        optimizer = FlatAdam(param, torch.zeros_like(param), lr)
        for grad in grads:
            optimizer.grad.copy_(grad)
            optimizer.step()
        optimizers.append(optimizer)
    fused, by_ops = optimizers
    assert (fused.param - start).abs().min() > 0  # every entry moved, about 0.08
    torch.testing.assert_close(by_ops.param, fused.param, rtol=1e-5, atol=2e-6)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        torch.testing.assert_close(by_ops.state[key], fused.state[key])
