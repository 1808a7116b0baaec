"""Looking inside a latent space: which dimensions are used, sweeps along them, and paths between two codes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import typicality
from .base import evaluating
from .blocks import kl_standard_normal

ACTIVITY_THRESHOLD = 1e-2  # Burda et al. 2015, Sec. 5.2: a unit u is active if Cov_x(E_q[u]) > 10^-2


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """(1 - t) a + t b for every t: codes (len(t), d) on the straight line from a (d,) or (1, d) to b."""
    t = t.reshape(-1, 1).to(a.dtype)
    return (1 - t) * a.reshape(1, -1) + t * b.reshape(1, -1)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation (Shoemake 1985; proposed for generative models' latent spaces by White 2016,
    "Sampling Generative Networks"): sin((1-t) W)/sin W a + sin(t W)/sin W b, W the angle between a and b. Under
    a Gaussian prior the codes on the way keep a typical norm, where the straight line's midpoint is shorter than
    both ends (the region of the prior's density that samples seldom visit in high dimensions). Falls back to lerp
    when a and b are (anti)parallel or zero, where the arc is undefined."""
    a, b = a.reshape(-1), b.reshape(-1)
    t = t.reshape(-1, 1).to(a.dtype)
    norms = a.norm() * b.norm()
    if norms == 0:
        return lerp(a, b, t)
    omega = torch.arccos(torch.clamp((a @ b) / norms, -1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


INTERPOLATIONS = {"lerp": lerp, "slerp": slerp}


@torch.no_grad()
def latent_statistics(model: nn.Module, images: Tensor, labels: Tensor | None = None,
                      batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """For a Gaussian-posterior model q(z|x) = N(mu(x), diag sigma^2(x)), over the images (N, 1, 28, 28):
    (the average KL(q(z_u|x) || N(0, 1)) of each dimension u (d,), in nats; the activity Cov_x(E_q[z_u]) = Var_x
    mu_u(x) of each dimension (d,), Burda et al. 2015, Sec. 5.2). Sorting by either picks the dimensions the
    model uses; `active_units` counts them."""
    kls, means = [], []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(model.device)
            y = None if labels is None else labels[start:start + batch_size].to(model.device)
            out = model.encode(x, y)
            if out.mean is None or out.logvar is None:
                raise TypeError(f"{type(model).__name__} has no Gaussian posterior: no per-dimension KL or activity")
            # kl_standard_normal sums over the last axis: a trailing axis of size 1 keeps each dimension apart.
            kls.append(kl_standard_normal(out.mean.unsqueeze(-1), out.logvar.unsqueeze(-1)).double().cpu())
            means.append(out.mean.double().cpu())
    mu = torch.cat(means)
    activity = mu.var(dim=0, unbiased=True) if len(mu) > 1 else torch.zeros(mu.shape[1], dtype=torch.float64)
    return torch.cat(kls).mean(0), activity


def active_units(activity: Tensor, threshold: float = ACTIVITY_THRESHOLD) -> int:
    """How many dimensions have Cov_x(E_q[z_u]) above the threshold (Burda et al. 2015's active units)."""
    return int((activity > threshold).sum())


def traversal(code: Tensor, dims: list[int], offsets: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """Codes (len(dims) * len(offsets), d): for each dimension u in dims, `code` with z_u replaced by
    code_u + offset * scale_u (scale: a number or one per dimension), row-major by dimension."""
    code = code.reshape(1, -1)
    scale = torch.as_tensor(scale, dtype=code.dtype)
    scale = scale.expand(code.shape[1]) if scale.dim() == 0 else scale
    rows = []
    for u in dims:
        if not 0 <= u < code.shape[1]:
            raise ValueError(f"dimension {u} is outside the {code.shape[1]}-D code")
        z = code.repeat(len(offsets), 1)
        z[:, u] = code[0, u] + offsets.to(code.dtype) * scale[u]
        rows.append(z)
    return torch.cat(rows)


def posterior_code(model: nn.Module, x: Tensor) -> Tensor:
    """The code a path starts or ends at: the posterior mean, or the code of a deterministic encoder."""
    out = model.encode(x)
    return out.mean if out.mean is not None else out.z


@torch.no_grad()
def interpolation_frames(model: nn.Module, x_a: Tensor, x_b: Tensor, steps: int, path=lerp) -> Tensor:
    """The decoded path (steps, 1, 28, 28) between the codes of digits x_a and x_b (each (1, 1, 28, 28)), at
    t = 0, 1/(steps-1), ..., 1 along `path` (lerp or slerp): the frames of the lecture's moon example."""
    with evaluating(model):
        t = torch.linspace(0, 1, steps, device=model.device)
        codes = path(posterior_code(model, x_a.to(model.device)), posterior_code(model, x_b.to(model.device)), t)
        return model.decode(codes).cpu()


def midpoint_dip(values: Tensor) -> Tensor:
    """Per path (rows of values (N, steps), steps odd): the mean of its two end frames' values minus its middle
    frame's. Positive when the path sags in the middle (a confidence or a likelihood lower there than at either
    end); 0 for a path that keeps its ends' level."""
    if values.shape[1] % 2 == 0:
        raise ValueError(f"a path needs an odd number of frames to have a middle one, got {values.shape[1]}")
    return (values[:, 0] + values[:, -1]) / 2 - values[:, values.shape[1] // 2]


@torch.no_grad()
def frame_measures(classifier: nn.Module, likelihood: nn.Module, reference, frames: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """The moon example's two measures of each frame (N, 1, 28, 28), by models on neither path: the classifier's
    probability of its top class, and the frame's log p(x) percentile among the reference's digits under the meter
    of `likelihood` (`typicality.log_likelihood`; `reference` is its LikelihoodReference). Both (N,) float64."""
    with evaluating(classifier):
        confidence = classifier(frames.to(classifier.device)).softmax(1).max(1).values.cpu().double()
    log_px = typicality.log_likelihood(likelihood, frames)
    return confidence, torch.from_numpy(reference.percentiles(log_px.numpy())).double()
