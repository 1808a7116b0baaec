"""Annealed importance sampling (AIS) of log p(x) for decoder-based models, and its BDMC upper bound.

AIS (Neal 2001, "Annealed importance sampling", eq. 4-8) moves a chain from the prior p(z) to the posterior
p(z|x) through the geometric path

    f_t(z) = p(z) p(x|z)^beta_t,      0 = beta_0 < beta_1 < ... < beta_T = 1,

(Wu, Burda, Salakhutdinov & Grosse 2017, "On the quantitative analysis of decoder-based generative models", Sec. 3)
and accumulates the log weight

    log w = sum_{t=1..T} (beta_t - beta_{t-1}) log p(x | z_{t-1}),

where z_{t-1} -> z_t is a Markov transition that leaves f_t invariant (here Hamiltonian Monte Carlo: leapfrog steps
plus a Metropolis test, Neal 2011 "MCMC using Hamiltonian dynamics", eq. 5.18-5.20). E[w] = p(x) exactly, so the
log-mean-exp of the weights of several independent chains is a stochastic LOWER bound on log p(x) (Jensen), whose
gap shrinks as T grows.

start="posterior" anneals instead from a per-digit Gaussian q0(z|x) = N(mu(x), diag sigma(x)^2) near the posterior
(`model.posterior_gaussian(x, labels)`: a VAE's q(z|x), AVB's moment-matched Gaussian; the AVB authors' evaluation,
avb/validate/ais.py, starts there), along f_t(z) = q0(z|x)^(1 - beta_t) (p(z) p(x|z))^beta_t, with

    log w = sum_{t=1..T} (beta_t - beta_{t-1}) [log p(z_{t-1}) + log p(x | z_{t-1}) - log q0(z_{t-1}|x)].

q0 is normalised, so E[w] = p(x) here too (Neal 2001 holds for any normalised f_0) and the estimate is the same
kind of stochastic lower bound; with T = 1 it is the importance-sampling bound with proposal q0.

BDMC (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using bidirectional Monte Carlo",
Sec. 4): for data x simulated from the model, the z that generated x is an exact sample of p(z|x). Running the
same chain backwards, from that z with beta going 1 -> 0, gives weights with E[w_rev] = 1 / p(x), so
-log-mean-exp(log w_rev) is a stochastic UPPER bound on log p(x). The distance between the two bounds on simulated
data bounds the error of the forward estimate with the same schedule (on data that look like the model's own).

The model interface used here is small:

    model.prior_sample(n, generator, labels=...)   z ~ p(z) (p(z|c) with labels, where the prior depends on them)
    model.log_prior(z, labels)                      log p(z), differentiable in z
    model.decoder_logits(z, labels)                 the decoder's output for codes z (labels: conditional models)
    model.log_likelihood(logits, x)                 log p(x|z) summed over pixels, shape (B,)

Step sizes: Wu et al. 2017 (Sec. 5.1) adapt each chain's leapfrog step size toward an acceptance rate of 0.65.
A chain adapted from its own past is no longer plain AIS, and the bias is measurable (see `ais_log_likelihood`),
so here a few pilot chains per digit do the adapting and the measured chains reuse the pilot's step sizes.
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .base import evaluating
from .blocks import log_normal

SCHEDULES = ("sigmoid", "geometric", "linear")
STARTS = ("prior", "posterior")  # f_0: p(z), or the model's per-digit Gaussian q0(z|x)


def annealing_schedule(num_steps: int, kind: str = "sigmoid", sharpness: float = 4.0,
                       start: float = 1e-4) -> Tensor:
    """beta_0 = 0 < beta_1 < ... < beta_T = 1 (num_steps + 1 values, float64).

    sigmoid: beta_t proportional to sigmoid(sharpness * (2t/T - 1)), rescaled to run from 0 to 1 (Grosse,
      Maddison & Salakhutdinov 2013; the schedule of Wu et al. 2017): many small steps near both ends.
    geometric: linear in log beta from `start` to 1 (then beta_0 = 0), most steps at small beta, where the
      likelihood's 100s of nats make p(x|z)^beta change fastest.
    linear: evenly spaced (a baseline; much worse for peaked likelihoods)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if kind == "sigmoid":
        s = torch.sigmoid(sharpness * (2 * torch.arange(num_steps + 1, dtype=torch.float64) / num_steps - 1))
        betas = (s - s[0]) / (s[-1] - s[0])
    elif kind == "geometric":
        if not 0 < start < 1:
            raise ValueError(f"the geometric schedule's start must be in (0, 1), got {start}")
        betas = torch.cat([torch.zeros(1, dtype=torch.float64),
                           torch.logspace(math.log10(start), 0, num_steps, dtype=torch.float64)])
    elif kind == "linear":
        betas = torch.linspace(0, 1, num_steps + 1, dtype=torch.float64)
    else:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {kind!r}")
    betas[0], betas[-1] = 0.0, 1.0
    return betas


@dataclass
class AISResult:
    """log_px: per-digit estimate (log-mean-exp over chains), shape (N,), float64. For a forward run this is a
    stochastic lower bound on log p(x); for a reverse (BDMC) run, an upper bound. log_weights: (num_chains, N).
    acceptance: mean Metropolis acceptance probability over all transitions and measured chains, per digit (N,)."""

    log_px: Tensor
    log_weights: Tensor
    acceptance: Tensor
    step_sizes: Tensor  # (N, T - 1): the fixed leapfrog step size of every transition, per digit (K, N, T - 1) if
    # stratified over K prior components
    settings: dict = field(default_factory=dict)


class _Target:
    """The path f_beta = f_0 (f_1 / f_0)^beta, f_1(z) = p(z) p(x|z), for many chains at once (rows = digits x
    chains): log f_0(z), the increment log f_1(z) - log f_0(z), and their gradients in z. f_0 is the prior (the
    increment is log p(x|z)) or, given `gaussian` = (mean, logvar) per row, the Gaussian q0(z|x) (the increment is
    log p(z) + log p(x|z) - log q0(z|x))."""

    def __init__(self, model, x: Tensor, labels: Tensor | None, gaussian: tuple[Tensor, Tensor] | None = None):
        self.model, self.x, self.labels, self.gaussian = model, x, labels, gaussian

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        with torch.enable_grad():
            # Two leaves with the same values, so that one backward pass gives both gradients separately.
            z_base, z_step = z.detach().requires_grad_(True), z.detach().requires_grad_(True)
            log_lik = self.model.log_likelihood(self.model.decoder_logits(z_step, self.labels), self.x)
            if self.gaussian is None:
                log_base, log_step = self.model.log_prior(z_base, self.labels), log_lik
            else:
                log_base = log_normal(z_base, *self.gaussian)
                log_step = self.model.log_prior(z_step, self.labels) + log_lik - log_normal(z_step, *self.gaussian)
            grad_base, grad_step = torch.autograd.grad(log_base.sum() + log_step.sum(), (z_base, z_step))
        return log_base.detach(), log_step.detach(), grad_base, grad_step


def _anneal(target: _Target, z: Tensor, betas: Tensor, leapfrog_steps: int, step_sizes: Tensor | None,
            initial_step_size: float, target_acceptance: float, adapt_rate: float,
            generator: torch.Generator | None, progress=None) -> tuple[Tensor, Tensor, Tensor]:
    """Runs the chains z (rows) along betas (forward: 0 -> 1; reverse: 1 -> 0) and returns (log w, mean acceptance,
    the step sizes used) per row; the step sizes have shape (rows, T - 1), one per transition.

    step_sizes given: the chains use them as they are (a valid AIS run). None: every chain adapts its own step
    size from its own acceptance (a pilot run whose weights are biased; see `ais_log_likelihood`).
    Only the current state is kept, so memory does not grow with the number of steps."""
    rows, dim = z.shape
    device = z.device
    transitions = len(betas) - 2  # no transition after the last weight update: it would not change the weight
    randn = lambda: torch.randn(rows, dim, generator=generator).to(device)  # noqa: E731 (CPU generator, any device)
    eps = torch.full((rows, 1), initial_step_size, device=device)
    used = torch.empty(rows, max(transitions, 0), device=device)
    log_w = torch.zeros(rows, dtype=torch.float64, device=device)
    accepted = torch.zeros(rows, dtype=torch.float64, device=device)
    log_base, log_step, grad_base, grad_step = target(z)
    for t in range(1, len(betas)):
        beta = float(betas[t])
        log_w += (beta - float(betas[t - 1])) * log_step.double()  # Neal 2001, eq. 4: f_t(z_{t-1}) / f_{t-1}(z_{t-1})
        if progress is not None:
            progress.update(1)
        if t > transitions:
            break
        if step_sizes is not None:
            eps = step_sizes[:, t - 1:t]
        used[:, t - 1] = eps[:, 0]
        # One HMC transition leaving f_t = f_0 (f_1 / f_0)^beta invariant (leapfrog, then the Metropolis test).
        momentum = randn()
        energy = -(log_base + beta * log_step) + 0.5 * momentum.pow(2).sum(1)
        new_z, p = z, momentum + 0.5 * eps * (grad_base + beta * grad_step)
        for step in range(leapfrog_steps):
            new_z = new_z + eps * p
            new_base, new_step, new_grad_base, new_grad_step = target(new_z)
            grad = new_grad_base + beta * new_grad_step
            p = p + (eps if step < leapfrog_steps - 1 else 0.5 * eps) * grad
        new_energy = -(new_base + beta * new_step) + 0.5 * p.pow(2).sum(1)
        accept_prob = torch.exp((energy - new_energy).clamp(max=0)).nan_to_num(0.0)
        take = torch.rand(rows, generator=generator).to(device) < accept_prob
        keep = take[:, None]
        z = torch.where(keep, new_z, z)
        log_base, log_step = torch.where(take, new_base, log_base), torch.where(take, new_step, log_step)
        grad_base = torch.where(keep, new_grad_base, grad_base)
        grad_step = torch.where(keep, new_grad_step, grad_step)
        accepted += accept_prob.double()
        if step_sizes is None:
            eps = (eps * torch.exp(adapt_rate * (accept_prob[:, None] - target_acceptance))).clamp(1e-5, 2.0)
    return log_w, accepted / max(1, transitions), used


def _repeat(t: Tensor | None, chains: int) -> Tensor | None:
    """Digit-major repetition: row i * chains + c is chain c of digit i."""
    return None if t is None else t.repeat_interleave(chains, dim=0)


@torch.no_grad()
def ais_log_likelihood(model, images: Tensor, labels: Tensor | None = None, *, num_steps: int = 500,
                       num_chains: int = 16, leapfrog_steps: int = 5, schedule: str = "sigmoid",
                       pilot_chains: int = 2, initial_step_size: float = 0.1, target_acceptance: float = 0.65,
                       adapt_rate: float = 0.5, batch_size: int = 50, generator: torch.Generator | None = None,
                       progress: bool = False, initial_codes: Tensor | None = None,
                       step_sizes: Tensor | None = None, start: str = "prior") -> AISResult:
    """Per-digit AIS estimate of log p(x) (or log p(x|c) given labels), in nats.

    Forward (default): num_chains chains per digit start from p(z) and anneal to p(z|x); the result is a
    stochastic lower bound. start="posterior": they start from the model's per-digit Gaussian q0(z|x)
    (`model.posterior_gaussian`) instead, still a stochastic lower bound (see the module docstring). With
    `initial_codes` (N, d), the exact posterior samples (the codes that generated the images), the chains run
    backwards from them (BDMC) toward the same f_0; the result is a stochastic upper bound.

    Step sizes: a chain whose step size adapts to its own acceptance no longer has E[w] = p(x) (measured on the
    linear-Gaussian model: +0.25 nats ABOVE the exact log p(x) with 8 adapted chains, so not even a bound). So
    `pilot_chains` extra chains per digit first run the same schedule with per-chain adaptation toward
    `target_acceptance`; their weights are discarded, and the geometric mean of their step sizes at each
    temperature is the fixed schedule the `num_chains` measured chains then use. It depends only on x and the
    pilot's own randomness, so the measured chains are plain AIS. Or pass `step_sizes` (N, T - 1) (the
    `step_sizes` of an earlier result, e.g. the forward run's, flipped, for the BDMC reverse run).
    Digits are processed batch_size at a time (batch_size * num_chains rows per decoder call), so memory stays
    bounded whatever the number of digits or steps.

    Priors made of K equally likely components (`model.prior_components`, the AAE's 10-Gaussian mixture and
    swiss-roll segments): without labels, log p(x) = log (1/K) sum_c p(x|c) with num_chains chains from each
    component (K times the cost), since chains cannot move between components."""
    if images.dim() < 2 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch, got shape {tuple(images.shape)}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if num_chains < 1 or leapfrog_steps < 1 or batch_size < 1 or pilot_chains < 1:
        raise ValueError("num_chains, pilot_chains, leapfrog_steps and batch_size must be >= 1")
    if not 0 < target_acceptance < 1 or initial_step_size <= 0:
        raise ValueError("target_acceptance must be in (0, 1) and initial_step_size > 0")
    if initial_codes is not None and initial_codes.shape[0] != len(images):
        raise ValueError("initial_codes needs one code per image (the exact posterior sample of each)")
    if step_sizes is not None and tuple(step_sizes.shape) != (len(images), max(num_steps - 1, 0)):
        raise ValueError(f"step_sizes must have shape ({len(images)}, {num_steps - 1}), got {tuple(step_sizes.shape)}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {list(STARTS)}, got {start!r}")
    if start == "posterior" and not hasattr(model, "posterior_gaussian"):
        raise ValueError(f"start='posterior' needs a model with posterior_gaussian(x, labels); {type(model).__name__} "
                         "has none")
    reverse = initial_codes is not None
    components = model.prior_components
    if components and labels is None and not reverse and step_sizes is None and start == "prior":
        # Stratify over the prior's equally likely components: p(x) = (1/K) sum_c p(x|c), each p(x|c) by AIS from
        # component c. HMC cannot cross the near-empty gaps between a mixture's petals, so unstratified chains that
        # start in the wrong petal never reach the posterior: with 4 chains on the 10-petal prior, 66% of digits
        # have no chain in the right one (the measured BDMC gap was 40 nats).
        kwargs = dict(num_steps=num_steps, num_chains=num_chains, leapfrog_steps=leapfrog_steps, schedule=schedule,
                      pilot_chains=pilot_chains, initial_step_size=initial_step_size,
                      target_acceptance=target_acceptance, adapt_rate=adapt_rate, batch_size=batch_size,
                      generator=generator, progress=progress)
        runs = [ais_log_likelihood(model, images, torch.full((len(images),), c, dtype=torch.long), **kwargs)
                for c in range(components)]
        log_weights = torch.cat([r.log_weights for r in runs])  # (K * chains, N), every weight an estimate of p(x|c)
        log_px = torch.logsumexp(log_weights, 0) - math.log(len(log_weights))
        acceptance = torch.stack([r.acceptance for r in runs]).mean(0)
        settings = {**runs[0].settings, "stratified_components": components}
        return AISResult(log_px, log_weights, acceptance, torch.stack([r.step_sizes for r in runs]), settings)
    betas = annealing_schedule(num_steps, schedule)
    if reverse:
        betas = betas.flip(0)
    device = model.device
    log_weights, acceptance, used = [], [], []
    from tqdm.auto import tqdm

    runs_per_batch = 1 if step_sizes is not None else 2
    bar = tqdm(total=runs_per_batch * num_steps * math.ceil(len(images) / batch_size), disable=not progress,
               leave=False, unit="step", desc=f"{'reverse ' if reverse else ''}AIS T={num_steps} x{num_chains}")
    with evaluating(model), closing(bar):
        for first in range(0, len(images), batch_size):
            x = images[first:first + batch_size].to(device)
            y = None if labels is None else labels[first:first + batch_size].to(device)
            n = len(x)

            q0 = None if start == "prior" else tuple(t.float() for t in model.posterior_gaussian(x, y))

            def target_and_codes(chains: int) -> tuple[_Target, Tensor]:
                gaussian = None if q0 is None else tuple(_repeat(t, chains) for t in q0)
                target = _Target(model, _repeat(x, chains), _repeat(y, chains), gaussian)
                if reverse:
                    return target, _repeat(initial_codes[first:first + n].to(device), chains).float()
                if gaussian is None:
                    return target, model.prior_sample(n * chains, generator, labels=_repeat(y, chains)).float()
                noise = torch.randn(n * chains, gaussian[0].shape[1], generator=generator).to(device)
                return target, gaussian[0] + (0.5 * gaussian[1]).exp() * noise

            if step_sizes is None:  # the pilot: adapted step sizes, weights discarded
                _, _, pilot = _anneal(*target_and_codes(pilot_chains), betas, leapfrog_steps, None,
                                      initial_step_size, target_acceptance, adapt_rate, generator, bar)
                eps = pilot.log().view(n, pilot_chains, -1).mean(1).exp()
            else:
                eps = step_sizes[first:first + n].to(device)
            log_w, acc, _ = _anneal(*target_and_codes(num_chains), betas, leapfrog_steps, _repeat(eps, num_chains),
                                    initial_step_size, target_acceptance, adapt_rate, generator, bar)
            log_weights.append(log_w.view(n, num_chains).T.cpu())
            acceptance.append(acc.view(n, num_chains).mean(1).cpu())
            used.append(eps.cpu())
    log_weights = torch.cat(log_weights, dim=1)
    # Reverse weights estimate 1/p(x): the upper bound is minus their log-mean-exp.
    log_mean = torch.logsumexp(log_weights, 0) - math.log(num_chains)
    settings = {"num_steps": num_steps, "num_chains": num_chains, "leapfrog_steps": leapfrog_steps,
                "schedule": schedule, "target_acceptance": target_acceptance, "pilot_chains": pilot_chains,
                "start": start}
    return AISResult(-log_mean if reverse else log_mean, log_weights, torch.cat(acceptance), torch.cat(used), settings)


@torch.no_grad()
def simulate(model, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
    """n pairs (z, x) from the model's joint p(z) p(x|z): x drawn from the decoder's Bernoulli pixels (binary, like
    the scored test digits). z is then an exact sample of p(z|x), what BDMC's reverse chain starts from."""
    if not model.config.pixel_likelihood.binary:
        raise ValueError("simulate draws binary images: it needs a model with the bernoulli likelihood")
    with evaluating(model):
        z = model.prior_sample(n, generator, labels=labels)
        probs = torch.sigmoid(model.decoder_logits(z, labels))
    x = torch.bernoulli(probs.cpu(), generator=generator).to(probs.device)
    return z, x


@dataclass
class BDMCResult:
    lower: Tensor  # forward AIS, per simulated digit (N,)
    upper: Tensor  # reverse AIS from the generating code, per simulated digit (N,)

    @property
    def gap(self) -> float:
        """Mean upper - lower bound in nats: how far the forward estimate can be from log p(x) on such data."""
        return float((self.upper - self.lower).mean())


def bdmc(model, codes: Tensor, images: Tensor, labels: Tensor | None = None,
         generator: torch.Generator | None = None, **ais_kwargs) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015, Sec. 4) on images simulated from the model together with the
    codes that generated them (`simulate`): forward AIS (lower bound) and reverse AIS started at each generating
    code (upper bound). The reverse chains use the forward run's step sizes in reverse order, so both directions
    run the same transitions and the gap measures the forward estimate's error on such data."""
    forward = ais_log_likelihood(model, images, labels, generator=generator, **ais_kwargs)
    reverse = ais_log_likelihood(model, images, labels, generator=generator, initial_codes=codes,
                                 step_sizes=forward.step_sizes.flip(1), **ais_kwargs)
    return BDMCResult(forward.log_px, reverse.log_px)
