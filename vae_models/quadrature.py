"""Exact log p(x) of a model with a 2-D code, by quadrature over a grid on its prior's support.

For a decoder-based model with z in R^2,

    p(x) = int p(z) p(x|z) dz  ~=  h^2 sum_g p(z_g) p(x|z_g)      (the midpoint rule on cells of side h),

so log p(x) = logsumexp_g [log p(z_g) + log p(x|z_g)] + 2 log h, and on the same grid the normalised posterior is
log p(z_g|x) = log p(z_g) + log p(x|z_g) - log p(x) (a density: h^2 sum_g p(z_g|x) = 1). In 2-D this is cheap
enough to be the reference that the stochastic estimators (the IWAE bound, AIS in ais.py) are checked against.
It needs only the interface AIS uses: `log_prior(z, labels)`, `decoder_logits(z, labels)` and
`log_likelihood(logits, x)`.

The grid (`latent_grid`) is the lattice of cell centres ((i + 1/2) h, (j + 1/2) h), kept where the prior's log
density is within `support` nats of its largest value on the lattice. It grows ring by ring from the origin until a
whole ring lies outside that level, so its extent comes from the prior itself. For N(0, I) the kept region is the
disc |z|^2 <= 2 support, whose prior mass outside is exactly e^-support (chi-squared with 2 degrees of freedom):
radius 8 and 1.3e-14 at the default 32 nats. The AAE's 10-Gaussian mixture and swiss roll are equal-weight
mixtures of equal-shape Gaussians far enough apart that their levels are, nearly, the union of their components'
ellipses, each again with mass e^-support outside. The grid is decoded once (per label for label-conditional
models); for Bernoulli pixels sum_p softplus(l_p) is computed once per grid point and the data term of every image
is one matrix product x @ logits^T. Other pixel likelihoods use the model's own `log_likelihood`, in chunks.

Convergence, measured in the same pass: the lattice splits into four sub-lattices of spacing 2h (by the parities of
i and j), each a midpoint rule of its own, and the points within `support - NARROWER_BY` nats form a narrower
support. `QuadratureResult.spacing_change` is how much halving the spacing from 2h to h moved log p(x), and
`support_change` how much widening the support by NARROWER_BY nats did. The integrand's kinks (ReLU decoders) make
the midpoint rule converge as h^2, not faster, so the change from 2h to h overstates the remaining error of the
grid at h. Measured on the first 500 binarised test digits of the bundled vae-2d: the default grid's in-pass
estimate was at most 0.32 nats per digit (0.00064 for the mean), while an explicit refinement from 0.02 to 0.01
moved log p(x) by at most 0.063 nats per digit and the mean by 0.00015 (2 of the 500 digits moved by more than
their in-pass estimate). On all 10,000 binarised test digits of the bundled 2-D exports (train.evaluate
--exact-only, the default grid: spacing 0.02, support 32 nats; each export's eval_results.json has the numbers),
halving the spacing from 0.04 moved the mean -log p(x) by at most 0.00092 (vae-2d), 0.0068 (avb-2d), 0.0014
(aae-2d-gaussian), 0.00007 (aae-2d-mixture) and 0.00049 nats (aae-2d-supervised), single digits by up to 1.2, 1.8,
1.3, 0.18 and 0.66 nats. Widening the support from 24 to 32 nats moved no digit by more than 0.00014 nats under the
Gaussian priors; under the two 10-Gaussian mixtures it moved the mean by 0.00044 and 0.00075 nats and single digits
by up to 1.7 nats, and a grid of 40 nats (spacing 0.04) added at most 0.30 and 0.20 nats to a digit (4 digits each
above 0.01) and 0.00006 and 0.00004 to the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import VAEFamilyModel, evaluating

SPACING = 0.02  # cell side h of the default grid
SUPPORT = 32.0  # nats: the grid keeps z where log p(z) >= its maximum - SUPPORT (N(0, I): |z| <= 8)
NARROWER_BY = 8.0  # nats: the narrower support the extent check compares with (N(0, I): |z| <= 6.9)
RING = 1.0  # width of each ring the grid grows by while the prior is still within the support on it


@dataclass(frozen=True)
class LatentGrid:
    """Cells of side `spacing` over the prior's support: cell g is centred at (index[g] + 1/2) * spacing."""

    spacing: float
    support: float  # nats below the prior's peak that the grid reaches
    index: Tensor  # (G, 2) int64 lattice coordinates (i, j)
    log_prior: Tensor  # (G,) float64 log p(z) at the cell centres (labels=None: the marginal prior)
    peak: float  # the largest log p(z) on the lattice

    @property
    def points(self) -> Tensor:
        """The cell centres z_g, (G, 2) float32."""
        return ((self.index.double() + 0.5) * self.spacing).float()

    @property
    def log_cell_area(self) -> float:
        return 2 * math.log(self.spacing)

    @property
    def half_cells(self) -> int:
        """n such that every index lies in [-n, n): the grid fits in the square [-n h, n h]^2."""
        return int(torch.maximum(self.index.max() + 1, -self.index.min()).item())

    def dense(self, values: Tensor) -> Tensor:
        """Values per grid point (..., G) laid out on the bounding square, (..., 2n, 2n) with -inf off the
        support; [..., a, b] is the cell of index (a - n, b - n), so the first axis runs along z_1."""
        n = self.half_cells
        out = values.new_full((*values.shape[:-1], 2 * n, 2 * n), -math.inf)
        out[..., self.index[:, 0] + n, self.index[:, 1] + n] = values
        return out


def latent_grid(model, spacing: float = SPACING, support: float = SUPPORT, ring: float = RING,
                max_extent: float = 64.0, chunk: int = 8192) -> LatentGrid:
    """The grid over the support of `model`'s prior: every lattice cell whose centre has log p(z) within `support`
    nats of the largest value seen. The square [-e, e]^2 grows by `ring` until log p(z) on the whole new ring is
    below that level (each centre's log p(z) is computed once); the ring that stopped it is not kept. Priors that
    fall off away from the origin only (an isolated island beyond a ring below the level would be missed)."""
    if model.config.latent_dim != 2:
        raise ValueError(f"quadrature needs a 2-D code, got latent_dim={model.config.latent_dim}")
    if spacing <= 0 or support <= 0 or ring < spacing:
        raise ValueError(f"spacing and support must be > 0 and ring >= spacing, got {spacing}, {support}, {ring}")
    step = max(1, round(ring / spacing))  # cells per ring
    kept_index, kept_log_prior, peak, inner = [], [], -math.inf, 0
    with evaluating(model), torch.no_grad():
        while True:
            outer = inner + step
            if outer * spacing > max_extent:
                raise ValueError(f"the prior is still within {support} nats of its peak at |z| = {max_extent}")
            i = torch.arange(-outer, outer)
            index = torch.cartesian_prod(i, i)
            far = torch.maximum((index[:, 0] + 0.5).abs(), (index[:, 1] + 0.5).abs())
            index = index[far > inner]  # the new ring
            z = ((index.double() + 0.5) * spacing).float().to(model.device)
            log_prior = torch.cat([model.log_prior(part).double().cpu() for part in z.split(chunk)])
            if log_prior.max() < peak - support:
                break
            peak = max(peak, float(log_prior.max()))
            kept_index.append(index)
            kept_log_prior.append(log_prior)
            inner = outer
    index, log_prior = torch.cat(kept_index), torch.cat(kept_log_prior)
    keep = log_prior >= peak - support
    return LatentGrid(spacing, support, index[keep], log_prior[keep], peak)


@dataclass
class QuadratureResult:
    """log_px (N,) float64: log p(x) (log p(x|y) given labels) on `grid`. coarse_log_px (4, N): the same on each of
    the four sub-lattices of spacing 2h; narrow_log_px (N,): on the points within support - NARROWER_BY nats."""

    log_px: Tensor
    coarse_log_px: Tensor
    narrow_log_px: Tensor
    grid: LatentGrid

    @property
    def spacing_change(self) -> Tensor:
        """Per digit, the largest |change| of log p(x) when the spacing halves from 2h to h (N,)."""
        return (self.coarse_log_px - self.log_px).abs().max(0).values

    @property
    def support_change(self) -> Tensor:
        """Per digit, how much log p(x) grew when the support widened by NARROWER_BY nats (N,), >= 0."""
        return self.log_px - self.narrow_log_px

    @property
    def mean_spacing_change(self) -> float:
        """The largest |change| of the mean log p(x) over the digits when the spacing halves from 2h to h."""
        return float((self.coarse_log_px.mean(1) - self.log_px.mean()).abs().max())


def quadrature_log_likelihood(model, images: Tensor, labels: Tensor | None = None, grid: LatentGrid | None = None,
                              *, chunk: int = 8192, batch_size: int = 1024, progress: bool = False) -> QuadratureResult:
    """log p(x) per image by the midpoint rule on `grid` (default: latent_grid(model)), with the convergence checks
    of the module docstring from the same pass. Labels (label-conditional models): log p(x|y), the grid decoded once
    per label present. Per block of the (images x grid points) matrix of log p(z) + log p(x|z), every sum the checks
    need (the whole grid, the four sub-lattices, the narrower support) is one product of exp(block - its row
    maximum) with a (points x 6) indicator matrix, accumulated in float64."""
    grid = latent_grid(model) if grid is None else grid
    which = _indicators(grid)
    sums = torch.full((len(images), 6), -math.inf, dtype=torch.float64)  # log of the six sums, per image
    for rows, cols, block in _log_joint_blocks(model, images, labels, grid, chunk, batch_size, progress):
        top = block.max(1, keepdim=True).values
        # Terms below e^-80 of a row's largest change no sum; the clamp keeps exp off denormal floats (4x slower).
        weights = block.sub_(top).clamp_(min=-80.0).exp_()
        part = top.double() + torch.log(weights @ which[cols].to(block.device)).double()
        sums[rows] = torch.logaddexp(sums[rows], part.cpu())
    return _result(sums, grid)


def _indicators(grid: LatentGrid) -> Tensor:
    """(G, 6) float32: which grid points each of the checks' sums takes (all, the four sub-lattices of spacing 2h by
    the parities of i and j, the narrower support)."""
    parity = (grid.index[:, 0] % 2) * 2 + grid.index[:, 1] % 2
    narrow = grid.log_prior >= grid.peak - (grid.support - NARROWER_BY)
    return torch.cat([torch.ones(len(parity), 1), F.one_hot(parity, 4), narrow[:, None]], 1).float()


def _result(sums: Tensor, grid: LatentGrid) -> QuadratureResult:
    """The result from the log of the six sums (N, 6) of exp(log p(z) + log p(x|z)) that _indicators selects."""
    area = grid.log_cell_area
    return QuadratureResult(sums[:, 0] + area, sums[:, 1:5].T + area + math.log(4), sums[:, 5] + area, grid)


def grid_log_posterior(model, images: Tensor, labels: Tensor | None = None, grid: LatentGrid | None = None,
                       *, chunk: int = 8192, batch_size: int = 1024) -> tuple[Tensor, LatentGrid]:
    """(log p(z_g|x) (N, G) float64, the grid): the normalised posterior density at every grid point, with
    h^2 sum_g p(z_g|x) = 1; `grid.dense(...)` lays it out as an image. Holds N x G values: meant for a few digits."""
    grid = latent_grid(model) if grid is None else grid
    joint = _log_joint(model, images, labels, grid, chunk, batch_size)
    return joint - (torch.logsumexp(joint, 1, keepdim=True) + grid.log_cell_area), grid


def quadrature_posterior(model, images: Tensor, labels: Tensor | None = None, grid: LatentGrid | None = None,
                         *, chunk: int = 8192, batch_size: int = 1024) -> tuple[QuadratureResult, Tensor]:
    """Both of the above from one decoding of the grid: (quadrature_log_likelihood's result, grid_log_posterior's
    log p(z_g|x) (N, G)). Holds N x G x 6 values: meant for a few digits."""
    grid = latent_grid(model) if grid is None else grid
    joint = _log_joint(model, images, labels, grid, chunk, batch_size)
    sums = torch.logsumexp(joint[:, :, None] + _indicators(grid).double().log(), 1)
    return _result(sums, grid), joint - (sums[:, :1] + grid.log_cell_area)


def _log_joint(model, images, labels, grid, chunk, batch_size) -> Tensor:
    """log p(z_g) + log p(x_n|z_g) (N, G) float64."""
    joint = torch.empty(len(images), len(grid.index), dtype=torch.float64)
    for rows, cols, block in _log_joint_blocks(model, images, labels, grid, chunk, batch_size, False):
        joint[rows[:, None], cols] = block.double().cpu()
    return joint


def _bernoulli(model) -> bool:
    """Whether log p(x|z) is the library's Bernoulli sum, x . l - sum_p softplus(l_p) (pixel_log_likelihood)."""
    return model.config.pixel_likelihood.binary and type(model).log_likelihood is VAEFamilyModel.log_likelihood


def _log_joint_blocks(model, images, labels, grid, chunk, batch_size, progress):
    """Yields (image rows, grid columns, log p(z_g) + log p(x_n|z_g) (rows x columns), float32) over the whole
    matrix; every grid point is decoded once per label. float32 holds these sums of hundreds of nats to ~1e-5 nats,
    far below the quadrature's own error (float64 changed log p(x) by < 1e-5 on the bundled vae-2d)."""
    from tqdm.auto import tqdm

    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    device = model.device
    points = grid.points
    groups = [(None, torch.arange(len(images)))] if labels is None else [
        (c, (labels == c).nonzero()[:, 0]) for c in labels.unique()]
    fast = _bernoulli(model)
    bar = tqdm(total=len(groups) * math.ceil(len(points) / chunk), disable=not progress, leave=False,
               unit="chunk", desc=f"quadrature on {len(points)} points")
    with evaluating(model), torch.no_grad(), bar:
        for start in range(0, len(points), chunk):
            cols = torch.arange(start, min(start + chunk, len(points)))
            z = points[cols].to(device)
            for label, members in groups:
                y = None if label is None else label.to(device).expand(len(z))
                logits = model.decoder_logits(z, y)
                log_prior = grid.log_prior[cols].to(device) if y is None else model.log_prior(z, y).double()
                if fast:  # log p(z) + log p(x|z) = x . l + (log p(z) - sum_p softplus(l_p))
                    logits = logits.flatten(1)
                    offset = (log_prior - F.softplus(logits).sum(1).double()).float()
                for first in range(0, len(members), batch_size):
                    rows = members[first:first + batch_size]
                    x = images[rows].to(device)
                    if fast:
                        yield rows, cols, torch.addmm(offset, x.flatten(1).float(), logits.T)
                    else:
                        log_lik = torch.stack([model.log_likelihood(logits, one.expand(len(z), *one.shape))
                                               for one in x])
                        yield rows, cols, (log_lik.double() + log_prior).float()
                bar.update(1)
