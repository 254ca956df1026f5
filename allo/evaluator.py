"""Metric rows from the learner's state: the trainer's half of allo/metrics.py.

A row is built in two halves so the training loop never waits for the device:
`device_values` runs in the training thread (device tensors only, no sync) and `rows`
runs on the recorder thread (numpy, allo/metrics.py) once the values reach the host.
The keys of a row are docs/run-format.md's metrics.jsonl table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from allo.learner import Learner
from allo.metrics import (
    block_complete_width,
    eigenspace_bases,
    eigenvalue_errors,
    quality_row,
)
from allo.objective import Terms, Weights, graph_term
from allo.rundir import Metric
from allo.spectrum import GroundTruth


class Evaluator:
    """Turns the learner's state into metrics rows, in two halves: `device_values` in the
    training thread (device tensors only, no sync), `rows` on the host (numpy)."""

    def __init__(self, truth: GroundTruth, d: int, objective: str, data: Weights):
        width = block_complete_width(truth.eigenvalues, d)
        self.data = data  # each seed's data-set laws on the device: the Rayleigh operator
        self.values = truth.eigenvalues[:width]
        self.vectors = truth.eigenvectors[:, :width]
        self.bases = eigenspace_bases(self.vectors, self.values, d)
        self.d, self.objective = d, objective

    def device_values(self, learner: Learner, terms: Terms) -> dict[str, torch.Tensor]:
        return {**self.state_values(learner, terms), **self.table_values(learner.tables())}

    def state_values(self, learner: Learner, terms: Terms) -> dict[str, torch.Tensor]:
        """The step's losses, norms and eigenvalue estimates."""
        if learner.grad_norm is not None:  # clipping keeps the norm it clipped
            grad_norm = learner.grad_norm
        else:
            grad_norm = learner.model.grad.norm(dim=1)
        scalars = torch.stack([terms.total, terms.graph, terms.dual, terms.barrier,
                               terms.constraint.flatten(1).norm(dim=1), grad_norm,
                               learner.barrier]).T
        if self.objective == "allo":  # lambda_i = -beta_ii / 2
            estimates = -0.5 * torch.diagonal(learner.duals, dim1=1, dim2=2)
        else:  # GGDO has no duals: <u_i, L u_i> / <u_i, u_i> from the batch
            norms = torch.diagonal(terms.constraint, dim1=-2, dim2=-1) + 1.0
            estimates = terms.graph_per_vector / norms.clamp(min=1e-12)
        return {"scalars": scalars.detach(), "estimates": estimates.detach()}

    def table_values(self, tables: torch.Tensor) -> dict[str, torch.Tensor]:
        """The (S, N, d) representation and its Rayleigh quotients."""
        # docs/math.md (13) under each seed's own data, on the device (N^2 d per seed)
        norms = (self.data.states1[..., None] * tables * tables).sum(dim=-2)
        rayleigh = graph_term(tables, self.data.pairs, self.data.laplacian) / norms.clamp(
            min=1e-30)
        return {"rayleigh": rayleigh, "tables": tables}

    def rows(self, step: int, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """One row per seed from `device_values`, moved to the host."""
        rows = []
        scalars = values["scalars"].astype(np.float64)
        estimates = values["estimates"].astype(np.float64)
        for seed, table in enumerate(values["tables"]):
            total, graph, dual, barrier, orth, grad, coef = (float(x) for x in scalars[seed])
            row: dict[str, Any] = {
                Metric.STEP: step, Metric.LOSS_TOTAL: total, Metric.LOSS_GRAPH: graph,
                Metric.LOSS_DUAL: dual, Metric.LOSS_BARRIER: barrier, Metric.ORTH_ERROR: orth,
                Metric.GRAD_NORM: grad, Metric.BARRIER_COEF: coef}
            if self.objective == "allo":
                row[Metric.DUAL_DIAG] = (-2.0 * estimates[seed]).tolist()
            else:
                row.pop(Metric.LOSS_DUAL)
            row.update(quality_row(table, estimates[seed], self.vectors, self.values, self.d,
                                   self.bases))
            rayleigh = values["rayleigh"][seed].astype(np.float64)
            row[Metric.EIG_RAYLEIGH] = rayleigh.tolist()
            row[Metric.EIG_RAYLEIGH_MEAN_REL_ERROR] = eigenvalue_errors(
                rayleigh, self.values[: self.d])["mean_rel"]
            rows.append(row)
        return rows
