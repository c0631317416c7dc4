"""Adversarial training pieces for the stochastic restorers (One-to-Many, posterior sampling).

They plug into the one training loop (``paperlib.train``): a GAN recipe passes its
generator, critic and the generator's moving average as three entries of ``models``
(``{"G": ..., "D": ..., "G_ema": ...}``; ``G_ema`` has no optimizer, so the loop only
saves and restores it) and writes a step function that alternates the critic and
generator updates with ``ctx.update``. Noise inputs are drawn from torch's global
RNG inside the step: the loop reseeds it from ``(seed, step, rank)`` before every
step, so a resumed run draws the same noise.

* ``critic_loss`` / ``generator_loss``: the non-saturating GAN loss of Goodfellow et al.
  2014 on logits, ``softplus(-D(x)) + softplus(D(G))`` for the critic and
  ``softplus(-D(G))`` for the generator (what Man et al. 2023 use; One-to-Many's
  ``L_natural = -log D(X^)`` is the same generator term, D's output being a logit
  before the logistic function).
* ``r1_penalty``: Mescheder et al. 2018's R1, ``E ||grad_x D(x)||^2`` on real data
  (the caller multiplies by ``gamma / 2``); built with ``torch.autograd.grad``
  (``create_graph=True``) so it trains the critic.
* ``ema_update``: ``ema <- decay * ema + (1 - decay) * model`` for parameters,
  buffers copied (batch-norm statistics); the EMA generator is the one evaluated.
* ``seeded``: draw noise for validation from fixed seeds, apart from training's RNG.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["critic_loss", "generator_loss", "r1_penalty", "ema_copy", "ema_update", "seeded"]


def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating critic loss: ``mean softplus(-D(real)) + mean softplus(D(fake))`` (binary cross-entropy)."""
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``mean softplus(-D(fake)) = -mean log sigmoid(D(fake))``."""
    return F.softplus(-fake_logits.float()).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs) -> torch.Tensor:
    """``E ||grad D(x)||^2`` over real inputs (squared norm per sample, averaged over the batch).

    ``real_inputs``: the tensor (or tuple of tensors) ``real_logits`` was computed from, with
    ``requires_grad=True``. Gradients of every input count (e.g. image and condition).
    """
    inputs = real_inputs if isinstance(real_inputs, (tuple, list)) else (real_inputs,)
    grads = torch.autograd.grad(real_logits.float().sum(), inputs, create_graph=True)
    return sum(g.float().pow(2).flatten(1).sum(1) for g in grads).mean()


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the moving average (starts equal to the model)."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied from ``model``."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    model = getattr(model, "module", model)   # unwrap DDP
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded to ``seed``, and restore the RNG afterwards.

    For stochastic validation: ``with seeded(k): sample = G(y)`` gives the same sample for
    seed ``k`` at every validation, without disturbing the training noise.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield
