"""The exact posterior p(z|x) of a 2-D model beside its approximate posterior q(z|x), and the lecture's identity

    log p(x) = ELBO(q) + KL(q(z|x) || p(z|x)),   ELBO(q) = E_q[log p(x|z)] - KL(q(z|x) || p(z)),

measured for one digit: log p(x) and p(z|x) by quadrature on a grid (quadrature.py), the ELBO by Monte Carlo over
draws of q (with the KL to a N(0, I) prior in closed form), and the gap KL(q || p(z|x)) on the same grid wherever q
has a density. The two sides are computed independently, so their agreement is a check, not an identity of code.

What q is comes from the shared interface (base.py), not from the model's name: `encode` reports a mean and
log-variance exactly when q(z|x) is a diagonal Gaussian; otherwise q is implicit and known through its draws
(`encode` called on copies of x), or a point mass when two encodings of x give the same code (a deterministic
encoder). A model whose KL term is learned (`spec.learned_kl`: AVB) has no density for q but has its training
objective's own ELBO estimate, `objective_elbo`. A point mass has no ELBO at all (its KL to p(z) is infinite).

The grid is a window around the posterior's mass, not the whole prior support (502,652 cells at the default spacing
of quadrature.py for N(0, I)): a coarse grid over the support (spacing COARSE) finds where p(z|x) is within
WINDOW_NATS of its largest value; that box, widened to hold q's draws too, is laid with CELLS x CELLS cells at most,
never coarser than quadrature.SPACING. The coarse grid's share of p(z|x) outside the box is reported
(`mass_outside`); the default grid's convergence checks (spacing, support) come from the same pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import evaluating
from .blocks import kl_standard_normal, log_normal
from .quadrature import SPACING, SUPPORT, LatentGrid, grid_log_posterior, latent_grid, quadrature_posterior

DRAWS = 2000  # draws of q(z|x) per digit: the Monte Carlo terms and the histogram of an implicit q
COARSE = 0.15  # spacing of the grid that locates the posterior's mass
WINDOW_NATS = 30.0  # the window holds every coarse cell whose log p(z|x) is within this of the largest
CELLS = 160  # the window's longer side has at most this many cells (finer than SPACING when the window is small)
MIN_SIDE = 0.5  # the window's smallest side, in z units: a point-like posterior still shows its surroundings
GAUSSIAN_REACH = 4.0  # a Gaussian q's window reaches this many standard deviations from its mean
ELBO_DRAWS = 8  # noise draws per image of a learned KL's objective over a test set (the evaluation's record's)


@dataclass
class Approximate:
    """q(z|x) of one digit: `kind` is "gaussian" (mean, logvar (2,)), "draws" (an implicit q) or "point"; `draws`
    (S, 2) holds draws of q (one row for a point)."""

    kind: str
    draws: Tensor
    mean: Tensor | None = None
    logvar: Tensor | None = None

    def log_density(self, z: Tensor) -> Tensor:
        """log q(z|x) at z (..., 2); only a Gaussian q has one."""
        return log_normal(z.double(), self.mean.double(), self.logvar.double())


@torch.no_grad()
def approximate_posterior(model, x: Tensor, draws: int = DRAWS) -> Approximate:
    """What the model's encoder says about one image x (1, 1, 28, 28): see the module docstring."""
    with evaluating(model):
        x = x.to(model.device)
        many = x.expand(draws, *x.shape[1:])
        out = model.encode(many)
        if out.mean is not None:
            return Approximate("gaussian", out.z.cpu(), out.mean[0].cpu(), out.logvar[0].cpu())
        first, second = model.encode(x).z, model.encode(x).z
        if torch.equal(first, second):
            return Approximate("point", first.cpu())
        return Approximate("draws", out.z.cpu())


@dataclass
class Posterior:
    """The exact posterior of one digit on a window grid, and q beside it. log_px: log p(x) by quadrature on the
    window; spacing_change, support_change: its convergence checks (quadrature.QuadratureResult); mass_outside: the
    coarse grid's share of p(z|x) outside the window; log_posterior (G,): normalised log p(z_g|x) on `grid`."""

    grid: LatentGrid
    log_posterior: Tensor
    log_px: float
    spacing_change: float
    support_change: float
    mass_outside: float
    q: Approximate

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(i0, j0, i1, j1): the window's cell indices, i0 <= i < i1 along z_1 and j0 <= j < j1 along z_2."""
        low, high = self.grid.index.min(0).values, self.grid.index.max(0).values + 1
        return int(low[0]), int(low[1]), int(high[0]), int(high[1])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(z1 min, z2 min, z1 max, z2 max): the window's edges."""
        h = self.grid.spacing
        return tuple(v * h for v in self.box)

    def image(self, values: Tensor | None = None) -> Tensor:
        """Values per grid cell (default log p(z|x)) laid out on the window (i1 - i0, j1 - j0), -inf off the grid;
        [a, b] is the cell (i0 + a, j0 + b), so the first axis runs along z_1."""
        values = self.log_posterior if values is None else values
        i0, j0, i1, j1 = self.box
        out = values.new_full((i1 - i0, j1 - j0), -math.inf)
        out[self.grid.index[:, 0] - i0, self.grid.index[:, 1] - j0] = values
        return out

    def mean_and_covariance(self) -> tuple[Tensor, Tensor]:
        """E[z|x] (2,) and Cov[z|x] (2, 2) under the grid posterior (float64)."""
        p = (self.log_posterior + self.grid.log_cell_area).exp()
        z = self.grid.points.double()
        mean = p @ z
        centred = z - mean
        return mean, (centred * p[:, None]).T @ centred

    def gap(self) -> float:
        """KL(q(z|x) || p(z|x)) = h^2 sum_g q(z_g) (log q(z_g) - log p(z_g|x)) on the window (a Gaussian q only)."""
        log_q = self.q.log_density(self.grid.points)
        return float((log_q + self.grid.log_cell_area).exp() @ (log_q - self.log_posterior))

    def q_mass(self) -> float:
        """h^2 sum_g q(z_g): how much of a Gaussian q the window holds (1 when the gap above is complete)."""
        return float((self.q.log_density(self.grid.points) + self.grid.log_cell_area).exp().sum())

    def denser_than_codes(self) -> float:
        """Where q's codes sit in p(z|x): the mean over q's draws of the posterior mass in cells denser than the
        draw's own cell (0: at the mode; near 1: in the far tail, or outside the window)."""
        order = torch.argsort(self.log_posterior, descending=True)
        mass = (self.log_posterior[order] + self.grid.log_cell_area).exp()
        above = torch.empty_like(mass)
        above[order] = torch.cumsum(mass, 0) - mass  # mass strictly denser than each cell
        cell = torch.floor(self.q.draws.double() / self.grid.spacing).long()
        i0, j0, i1, j1 = self.box
        at = torch.full((i1 - i0, j1 - j0), -1, dtype=torch.long)
        at[self.grid.index[:, 0] - i0, self.grid.index[:, 1] - j0] = torch.arange(len(self.grid.index))
        inside = (cell[:, 0] >= i0) & (cell[:, 0] < i1) & (cell[:, 1] >= j0) & (cell[:, 1] < j1)
        which = torch.full((len(cell),), -1, dtype=torch.long)
        which[inside] = at[cell[inside, 0] - i0, cell[inside, 1] - j0]
        levels = torch.where(which >= 0, above[which.clamp(min=0)], torch.ones(()))
        return float(levels.mean())


def _window_grid(model, low: Tensor, high: Tensor, support: float, peak: float) -> LatentGrid:
    """The lattice over the box [low, high] (float64 (2,)): at most CELLS cells along its longer side, no coarser
    than SPACING, kept where the prior is within `support` nats of `peak` (the whole support's, as latent_grid)."""
    side = float((high - low).max())
    spacing = min(SPACING, side / CELLS)
    first, last = torch.floor(low / spacing).long(), torch.ceil(high / spacing).long()
    index = torch.cartesian_prod(torch.arange(int(first[0]), int(last[0])), torch.arange(int(first[1]), int(last[1])))
    z = ((index.double() + 0.5) * spacing).float().to(model.device)
    with torch.no_grad():
        log_prior = model.log_prior(z).double().cpu()
    keep = log_prior >= peak - support
    return LatentGrid(spacing, support, index[keep], log_prior[keep], peak)


@torch.no_grad()
def exact_posterior(model, x: Tensor, q: Approximate | None = None, support: float = SUPPORT) -> Posterior:
    """p(z|x) and log p(x) of one image x (1, 1, 28, 28) on a window around its mass (module docstring), with q
    (default: approximate_posterior(model, x)). The prior is the marginal p(z) (no labels)."""
    q = approximate_posterior(model, x) if q is None else q
    coarse = latent_grid(model, spacing=COARSE, support=support)
    log_coarse = grid_log_posterior(model, x, grid=coarse)[0][0]
    near = coarse.points.double()[log_coarse >= log_coarse.max() - WINDOW_NATS]
    if q.kind == "gaussian":
        reach = GAUSSIAN_REACH * (0.5 * q.logvar.double()).exp()
        near = torch.cat([near, (q.mean.double() - reach)[None], (q.mean.double() + reach)[None]])
    else:
        near = torch.cat([near, q.draws.double()])
    low, high = near.min(0).values - COARSE, near.max(0).values + COARSE  # a coarse cell's margin
    centre, side = (low + high) / 2, max(float((high - low).max()), MIN_SIDE)
    low, high = centre - side / 2, centre + side / 2  # square: the heat map's pixels are square cells
    grid = _window_grid(model, low, high, support, coarse.peak)
    result, log_posterior = quadrature_posterior(model, x, grid=grid)
    log_posterior = log_posterior[0]
    z = coarse.points.double()
    outside = ((z < low) | (z > high)).any(1)
    coarse_mass = (log_coarse + coarse.log_cell_area).exp()
    return Posterior(grid, log_posterior, float(result.log_px[0]), float(result.spacing_change[0]),
                     float(result.support_change[0]), float(coarse_mass[outside].sum()), q)


@dataclass
class Evidence:
    """The identity's numbers for one digit (nats). reconstruction: E_q[log p(x|z)] over q's draws, with its Monte
    Carlo standard error; kl_prior: KL(q || p(z)) (closed form under a N(0, I) prior, else Monte Carlo, error 0 in
    closed form); elbo = reconstruction - kl_prior; gap: KL(q || p(z|x)) on the grid. Models without a density for
    q: the ELBO is the objective's own (`objective_elbo`, a learned KL) or None (a point mass), gap None."""

    log_px: float
    elbo: float | None
    elbo_error: float | None
    reconstruction: float | None = None
    reconstruction_error: float | None = None
    kl_prior: float | None = None
    kl_prior_error: float | None = None
    kl_closed_form: bool = False
    gap: float | None = None
    learned_kl: bool = False
    draws: int = 0

    @property
    def difference(self) -> float | None:
        """log p(x) - ELBO: equals the gap KL(q || p(z|x)) for the true ELBO."""
        return None if self.elbo is None else self.log_px - self.elbo


def _mean_and_error(values: Tensor) -> tuple[float, float]:
    values = values.double()
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


@torch.no_grad()
def evidence(model, x: Tensor, posterior: Posterior) -> Evidence:
    """log p(x), the ELBO and its two terms, and the gap, for the image x of `posterior` (see Evidence)."""
    q = posterior.q
    x = x.to(model.device)
    if q.kind == "gaussian":
        z = q.draws.to(model.device)
        with evaluating(model):
            log_lik = model.log_likelihood(model.decoder_logits(z), x.expand(len(z), *x.shape[1:])).cpu()
        reconstruction, reconstruction_error = _mean_and_error(log_lik)
        closed = model.prior_name == "gaussian"
        if closed:
            kl, kl_error = float(kl_standard_normal(q.mean.double(), q.logvar.double())), 0.0
        else:
            kl, kl_error = _mean_and_error(q.log_density(q.draws) - model.log_prior(z).double().cpu())
        return Evidence(posterior.log_px, reconstruction - kl, math.hypot(reconstruction_error, kl_error),
                        reconstruction, reconstruction_error, kl, kl_error, closed, posterior.gap(),
                        draws=len(q.draws))
    if model.spec.learned_kl:  # one noise draw per copy of x: DRAWS independent draws of the objective's ELBO
        with evaluating(model):
            values = model.objective_elbo(x.expand(len(q.draws), *x.shape[1:]), draws=1).cpu()
        elbo, error = _mean_and_error(values)
        return Evidence(posterior.log_px, elbo, error, learned_kl=True, draws=len(q.draws))
    return Evidence(posterior.log_px, None, None, draws=len(q.draws))


@dataclass
class DatasetElbo:
    """The ELBO over a set of images: per image (N,), and the Monte Carlo standard error of their mean."""

    values: Tensor
    error: float

    @property
    def mean(self) -> float:
        return float(self.values.mean())


@torch.no_grad()
def has_elbo(model, x: Tensor) -> bool:
    """Whether the model has an ELBO to measure: a Gaussian q (`encode` of an image x reports a mean) or a learned
    KL (the objective's own ELBO); not a point mass or an implicit q without one."""
    with evaluating(model):
        return model.encode(x.to(model.device)).mean is not None or model.spec.learned_kl


@torch.no_grad()
def dataset_elbo(model, images: Tensor, batch_size: int = 1000, seed: int = 0) -> DatasetElbo | None:
    """The ELBO per image over a test set, where the model has one; None otherwise. Each image gets two independent
    estimates a and b: for a Gaussian q, one draw of log p(x|z) minus the KL to p(z) (closed form under N(0, I),
    else at the same draw); for a learned KL, the objective's own estimate over ELBO_DRAWS / 2 noise draws (ELBO_DRAWS
    in all, as the evaluation's "Objective ELBO" record). The ELBO is (a + b) / 2, and the Monte Carlo error of the
    set's mean sqrt(sum (a - b)^2 / 4) / N: only the draws' noise, not the spread between images. Drawn from torch's
    RNG seeded `seed` in a forked state (the caller's random stream is untouched)."""

    def once(x):
        enc = model.encode(x)
        if enc.mean is None:
            return model.objective_elbo(x, draws=ELBO_DRAWS // 2)
        log_lik = model.log_likelihood(model.decoder_logits(enc.z), x)
        if model.prior_name == "gaussian":
            return (log_lik - kl_standard_normal(enc.mean, enc.logvar)).double()
        return (log_lik - log_normal(enc.z, enc.mean, enc.logvar) + model.log_prior(enc.z)).double()

    if not has_elbo(model, images[:1]):
        return None
    pairs = []
    with torch.random.fork_rng(devices=[]), evaluating(model):
        torch.manual_seed(seed)
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(model.device)
            pairs.append(torch.stack([once(x), once(x)]).cpu())
    a, b = torch.cat(pairs, 1)
    return DatasetElbo((a + b) / 2, float((a - b).pow(2).sum().sqrt() / 2 / len(a)))
