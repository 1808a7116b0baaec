"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017, "Adversarial Variational Bayes: Unifying
Variational Autoencoders and Generative Adversarial Networks", arXiv 1701.04722, ICML 2017; sections and equations
as numbered in the ICML version).

The posterior is implicit: z = f(x, eps), eps ~ N(0, I) fed to the encoder beside the image, so q(z|x) can take
any shape but has no density to put in the KL term of the ELBO. A discriminator T(x, z) learns the missing
log-density ratio instead. It is trained with the logistic loss of eq. 3.3,

    max_T  E_pD(x) E_q(z|x) log sigmoid(T(x, z))  +  E_pD(x) E_p(z) log(1 - sigmoid(T(x, z))),

whose optimum is T*(x, z) = log q(z|x) - log p(z) (Proposition 1, eq. 3.4). With T in place of the KL the
encoder/decoder minimise the negated eq. 3.7 objective,

    loss = E_pD(x) E_eps[ T(x, z) - log p(x|z) ],    z = f(x, eps),

(Proposition 2: the gradient through T's own dependence on the encoder vanishes in expectation, so T is used as a
fixed function of (x, z) here and gradients flow only through z.)

Adaptive contrast (Sec. 4): T struggles when q(z|x) and p(z) barely overlap, so T instead compares q with an
auxiliary Gaussian r_alpha(z|x) = N(mu(x), sigma(x)^2) that matches q's first two moments. The bound becomes
    log p(x) >= -KL(q(z|x) || r_alpha(z|x)) + E_q[ -log r_alpha(z|x) + log p(x, z) ],
and KL(q || r_alpha) equals the KL of the normalised z~ = (z - mu) / sigma to N(0, I), which T estimates by
separating z~ from N(0, I) samples. The generator loss becomes E[ T(x, z~) + log r_alpha(z|x) - log p(z) - log p(x|z) ].

The authors' code (github.com/LMescheder/AdversarialVariationalBayes, last commit ee29153) and what here maps
to it: avb/avb/__init__.py (the two losses, z~ with mu and sigma^2 + 1e-4 detached), avb/avb/train.py (both
players' gradients from one batch, then both applied, Adam beta1 = 0.5: the trainer's side), the adversary of
avb/avb/models/conv0.py (`discriminator_type="inner_product"`), the noise-basis encoder of
avb/avb/models/full0_ac.py and conv0_ac.py (`encoder_type="noise_basis"`, `basis_moments="batch"`), full0.py's
every-layer noise (`encoder_type="every_layer_noise"`), and TF-slim's initialisation (`weight_init="authors"`).
Where this differs: r_alpha's variance floor (1e-6 here) enters z~ and log r_alpha alike, keeping the Sec. 4
identity exact, while their log r_alpha takes the unfloored variance, which adds 0.5 sum_k log(1 + 1e-4 / Var_k)
>= 0 to their KL estimate; their generator loss is divided by 784 (Adam's steps do not see the scale, up to its
epsilon); the trunk here is an MLP (their full0_ac / full0 form), where their MNIST scripts run conv0_ac / conv0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import ACTIVATIONS, NUM_PIXELS, ConfigError, Decoder, Encoder, PixelLikelihoodConfig, log_normal, mlp
from .registry import ModelSpec, Paper, register_model
from .vae import GaussianProposalMixin

ENCODERS = ("input_noise", "every_layer_noise", "noise_basis")
DISCRIMINATORS = ("joint", "inner_product")
BASIS_MOMENTS = ("fresh", "batch")
WEIGHT_INITS = ("pytorch", "authors")
VARIANCE_FLOOR = 1e-6  # added to Var[z|x] before the square root: r_alpha's std is never below 1e-3


@dataclass
class AVBConfig(PixelLikelihoodConfig):
    model_type: str = "avb"
    noise_dim: int = 16  # dimension of the noise eps fed to the encoder beside x (what makes q(z|x) implicit)
    discriminator_hidden_dims: tuple[int, ...] = (512, 256)  # widths of T(x, z)'s MLP over [flattened x, z]
    adaptive_contrast: bool = False  # compare q(z|x) with a moment-matched Gaussian r_alpha (Sec. 4), not p(z)
    contrast_samples: int = 8  # noise draws per x that estimate r_alpha's mean and std (adaptive contrast only)
    proposal_samples: int = 64  # draws per x that fit the Gaussian proposal of the IWAE bound and the reconstruction
    # The encoder f(x, eps) (defaults reproduce weights saved before these fields existed):
    #   input_noise: eps concatenated to the image features only (the old design: the net can learn to ignore it);
    #   every_layer_noise: a linear map of eps added before every encoder layer (the paper's plain AVB, Appendix,
    #     the authors' full0 model), so every layer sees fresh noise;
    #   noise_basis: z = z0(x) + sum_i a_i(x) * v_i(eps_i) (the paper's adaptive-contrast encoder, the authors'
    #     full0_ac model); the v_i do not depend on x, so E[z|x] and Var[z|x] come exactly from the basis moments.
    encoder_type: str = "input_noise"
    num_basis: int = 16  # noise_basis: number of basis vectors v_i (eps_i has noise_dim dimensions each)
    basis_hidden_dims: tuple[int, ...] = (64, 64)  # noise_basis: widths of each v_i(eps_i) MLP (elu)
    moment_samples: int = 256  # noise_basis: draws of the basis that estimate E[v_i] and Var[v_i]
    # Add 0.5 |z|^2 = -log N(z; 0, I) + const to T's output (the authors' adversary does, for a Gaussian prior):
    # T then only has to learn log q(z|x) up to a constant, not the prior's quadratic too.
    discriminator_prior_term: bool = False
    # T(x, z): joint = one MLP over [x, z] (discriminator_hidden_dims); inner_product = the authors' adversary,
    # <theta(x), s(z)> + T_x(x) + T_z(z), four MLPs of discriminator_hidden_dims each (leaky ReLU 0.2).
    discriminator_type: str = "joint"
    discriminator_features: int = 8192  # inner_product: the dimension of theta(x) and s(z) (the authors' 8192)
    # noise_basis under adaptive contrast: E[v_i], Var[v_i] from moment_samples fresh draws (fresh), or from the
    # batch's own draws, the ones that make its z (batch: the authors' tf.nn.moments(v, [0]), population variance).
    basis_moments: str = "fresh"
    # pytorch: torch's default initialisation; authors: TF-slim's (Xavier-uniform weights, zero biases) and the
    # authors' near-zero heads (normal, std 1e-5: z0 and every-layer-noise's output, T's theta, T_x and T_z).
    weight_init: str = "pytorch"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.noise_dim < 1:
            raise ConfigError(f"noise_dim must be >= 1, got {self.noise_dim}")
        if not self.discriminator_hidden_dims or min(self.discriminator_hidden_dims) < 1:
            raise ConfigError(f"discriminator_hidden_dims must be positive, got {self.discriminator_hidden_dims}")
        if self.contrast_samples < 2 or self.proposal_samples < 2:
            raise ConfigError("contrast_samples and proposal_samples must be >= 2 (a std needs two draws)")
        self.check_choice("encoder_type", ENCODERS)
        if self.num_basis < 1 or self.moment_samples < 2 or not self.basis_hidden_dims or min(self.basis_hidden_dims) < 1:
            raise ConfigError("num_basis must be >= 1, moment_samples >= 2, basis_hidden_dims positive widths")
        if self.encoder_type == "noise_basis" and self.backbone != "mlp":
            raise ConfigError("the noise_basis encoder is an MLP: use backbone='mlp'")
        self.check_choice("discriminator_type", DISCRIMINATORS)
        if self.discriminator_features < 1:
            raise ConfigError(f"discriminator_features must be >= 1, got {self.discriminator_features}")
        self.check_choice("basis_moments", BASIS_MOMENTS)
        if self.basis_moments == "batch" and self.encoder_type != "noise_basis":
            raise ConfigError("basis_moments='batch' needs encoder_type='noise_basis' (the basis draws it averages)")
        self.check_choice("weight_init", WEIGHT_INITS)


class Discriminator(nn.Module):
    """T(x, z) -> one logit per pair, shape (B,); optionally plus 0.5 |z|^2 (`discriminator_prior_term`)."""

    def __init__(self, prior_term: bool):
        super().__init__()
        self.prior_term = prior_term

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        t = self.logit(x.flatten(1), z)
        return t + 0.5 * z.pow(2).sum(1) if self.prior_term else t


class JointDiscriminator(Discriminator):
    """T(x, z): an MLP over [flattened x, z]."""

    def __init__(self, x_features: int, z_features: int, hidden_dims: tuple[int, ...], activation: str,
                 prior_term: bool = False):
        super().__init__(prior_term)
        self.net = mlp(x_features + z_features, hidden_dims, 1, activation)

    def logit(self, x: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([x, z], dim=1)).squeeze(1)


def leaky_mlp(in_features: int, hidden_dims: tuple[int, ...], out_features: int) -> nn.Sequential:
    """An MLP with the authors' lrelu (avb/ops.py: max(x, 0.2 x)) between layers and a linear output."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_features, width), nn.LeakyReLU(0.2)]
        in_features = width
    return nn.Sequential(*layers, nn.Linear(in_features, out_features))


class InnerProductDiscriminator(Discriminator):
    """The authors' adversary (avb/avb/models/conv0.py, `adversary`, used by every MNIST script):

        T(x, z) = <theta(x), s(z)> + T_x(x) + T_z(z)  [+ 0.5 |z|^2],   theta(x) = elu(.) of an MLP of x,

    s(z) a linear-output MLP of z, T_x and T_z MLPs to one number; all four have `hidden_dims` hidden layers
    (the authors': 1024, 1024, 1024) and theta, s have `features` outputs (the authors': 8192). x enters as it is,
    in [0, 1]. Separate x and z networks let T be rich in x and in z at the cost of one product per pair."""

    def __init__(self, x_features: int, z_features: int, hidden_dims: tuple[int, ...], features: int,
                 prior_term: bool = False):
        super().__init__(prior_term)
        self.theta = leaky_mlp(x_features, hidden_dims, features)
        self.s = leaky_mlp(z_features, hidden_dims, features)
        self.x_only = leaky_mlp(x_features, hidden_dims, 1)
        self.z_only = leaky_mlp(z_features, hidden_dims, 1)

    def logit(self, x: Tensor, z: Tensor) -> Tensor:
        pair = (F.elu(self.theta(x)) * self.s(z)).sum(1)
        return pair + self.x_only(x).squeeze(1) + self.z_only(z).squeeze(1)

    def near_zero_heads(self) -> list[nn.Linear]:
        return [self.theta[-1], self.x_only[-1], self.z_only[-1]]


class EveryLayerNoiseEncoder(nn.Module):
    """f(x, eps): an MLP over the image whose every layer also gets a learned linear map of the noise eps added to
    its pre-activation (the authors' full0 encoder adds a linear function of eps before each layer), so no layer can
    ignore the noise: h_l = act(W_l h_{l-1} + U_l eps + b_l); z = W_out h_L + U_out eps + b."""

    def __init__(self, config: "AVBConfig"):
        super().__init__()
        widths = [NUM_PIXELS, *config.hidden_dims, config.latent_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.noise = nn.ModuleList(nn.Linear(config.noise_dim, b, bias=False) for b in widths[1:])
        self.act = ACTIVATIONS[config.activation]()

    def forward(self, x: Tensor, eps: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, (layer, noise) in enumerate(zip(self.layers, self.noise)):
            h = layer(h) + noise(eps)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h

    def near_zero_heads(self) -> list[nn.Linear]:
        return [self.layers[-1]]


class NoiseBasisEncoder(nn.Module):
    """The adaptive-contrast encoder of the paper (Sec. 4 and Appendix; the authors' full0_ac / conv0_ac encoder):

        z = z0(x) + sum_i a_i(x) * v_i(eps_i),   eps_i ~ N(0, I),   a_i(x) = elu(l_i(x) - 5) + 1 > 0,

    with the noise basis v_i an MLP of its own noise only (elu hidden layers, linear output). Because the v_i do not
    depend on x, q(z|x)'s moments are E[z|x] = z0(x) + sum_i a_i(x) E[v_i] and Var[z|x] = sum_i a_i(x)^2 Var[v_i]
    (independent eps_i), where E[v_i] and Var[v_i] are estimated from draws of the basis shared by the whole batch:
    `moment_samples` fresh draws (`moments`), or the batch's own draws (`sample_with_moments`, the authors')."""

    def __init__(self, config: "AVBConfig"):
        super().__init__()
        d, m = config.latent_dim, config.num_basis
        self.num_basis, self.noise_dim, self.moment_samples = m, config.noise_dim, config.moment_samples
        self.trunk = nn.Sequential(nn.Flatten(), *mlp(NUM_PIXELS, config.hidden_dims, 1, config.activation)[:-1])
        width = config.hidden_dims[-1]
        self.z0 = nn.Linear(width, d)
        self.scales = nn.Linear(width, m * d)  # the m coefficient vectors a_i(x), before elu(. - 5) + 1
        widths = [config.noise_dim, *config.basis_hidden_dims, d]
        # One small MLP per basis vector, run for all m at once as batched matrix products.
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(m, a, b) / a ** 0.5) for a, b in zip(widths, widths[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(m, 1, b)) for b in widths[1:])

    def basis(self, eps: Tensor) -> Tensor:
        """v_i(eps_i) for eps (m, N, noise_dim) -> (m, N, latent_dim)."""
        h = eps
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = F.elu(h)
        return h

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z0(x) (B, d) and the a_i(x) (m, B, d)."""
        h = self.trunk(x)
        a = F.elu(self.scales(h).view(len(x), self.num_basis, -1) - 5.0) + 1.0
        return self.z0(h), a.transpose(0, 1)

    def basis_moments(self, device) -> tuple[Tensor, Tensor]:
        """E[v_i] and Var[v_i] (m, 1, d) from moment_samples fresh basis draws."""
        v = self.basis(torch.randn(self.num_basis, self.moment_samples, self.noise_dim, device=device))
        return v.mean(1, keepdim=True), v.var(1, keepdim=True)

    def forward(self, x: Tensor, eps: Tensor) -> Tensor:
        """z for eps (B, m * noise_dim): one draw per image."""
        return self.sample_with_moments(x, eps)[0]

    def sample_with_moments(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z (one draw per image, from eps (B, m * noise_dim)) and E[z|x], Var[z|x] from the same B basis draws:
        E[v_i] their mean, Var[v_i] their population variance (the authors' tf.nn.moments(v, [0]))."""
        z0, a = self.coefficients(x)
        v = self.basis(eps.view(len(x), self.num_basis, self.noise_dim).transpose(0, 1))
        mean_v, var_v = v.mean(1, keepdim=True), v.var(1, unbiased=False, keepdim=True)
        return z0 + (a * v).sum(0), z0 + (a * mean_v).sum(0), (a.pow(2) * var_v).sum(0)

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """E[z|x] and Var[z|x] (B, d) from the basis moments of moment_samples fresh draws."""
        z0, a = self.coefficients(x)
        mean_v, var_v = self.basis_moments(x.device)
        return z0 + (a * mean_v).sum(0), (a.pow(2) * var_v).sum(0)

    def near_zero_heads(self) -> list[nn.Linear]:
        return [self.z0]

    def xavier_basis(self) -> None:
        """TF-slim's Xavier-uniform init for each basis MLP's (fan_in, fan_out) weights."""
        with torch.no_grad():
            for w in self.weights:
                bound = (6 / (w.shape[1] + w.shape[2])) ** 0.5
                w.uniform_(-bound, bound)


def avb_discriminator_loss(T: Callable[[Tensor, Tensor], Tensor], x: Tensor, z_q: Tensor, z_p: Tensor) -> LossOutput:
    """The negated logistic objective of eq. 3.3, averaged over the batch: pairs (x, z_q), z_q ~ q(z|x), are labelled
    1 and pairs (x, z_p), z_p ~ p(z), labelled 0. -log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t).
    Its minimiser is T*(x, z) = log q(z|x) - log p(z) (Proposition 1, eq. 3.4)."""
    posterior = F.softplus(-T(x, z_q)).mean()
    prior = F.softplus(T(x, z_p)).mean()
    return LossOutput(posterior + prior, {"posterior_pairs": posterior, "prior_pairs": prior})


@register_model
class AVB(GaussianProposalMixin, VAEFamilyModel):
    config_class = AVBConfig
    spec = ModelSpec(
        name="avb",
        description="a VAE with an implicit posterior whose KL term is estimated by a discriminator",
        paper=Paper("Adversarial Variational Bayes", "Mescheder, Nowozin & Geiger", 2017, arxiv="1701.04722"),
        adversarial=True,
        likelihood="implicit",
        needs_ais=True,
        learned_kl=True,
        prior_matched=True,
    )

    def __init__(self, config: AVBConfig):
        super().__init__(config)
        if config.encoder_type == "input_noise":
            self.encoder = Encoder(config, config.latent_dim, extra_features=config.noise_dim)
        elif config.encoder_type == "every_layer_noise":
            self.encoder = EveryLayerNoiseEncoder(config)
        else:
            self.encoder = NoiseBasisEncoder(config)
        self.decoder = Decoder(config, config.latent_dim)
        if config.discriminator_type == "joint":
            self.discriminator = JointDiscriminator(NUM_PIXELS, config.latent_dim, config.discriminator_hidden_dims,
                                                    config.activation, config.discriminator_prior_term)
        else:
            self.discriminator = InnerProductDiscriminator(NUM_PIXELS, config.latent_dim,
                                                           config.discriminator_hidden_dims,
                                                           config.discriminator_features,
                                                           config.discriminator_prior_term)
        if config.weight_init == "authors":
            self.authors_init()

    def authors_init(self) -> None:
        """TF-slim's defaults, which the authors' networks use unless they say otherwise: Xavier-uniform weights and
        zero biases for every layer (noise-basis MLPs included), then the heads the authors start near zero
        (truncated normal, std 1e-5: full0_ac/conv0_ac `z0`, full0 `z`, conv0 adversary `theta`, `Tx`, `Tz`), so
        T starts at its 0.5 |z|^2 term and z at z0 ~ 0 plus the basis scaled by a_i(x) = exp(l_i(x) - 5), small."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:  # every-layer noise's maps of eps have none
                        nn.init.zeros_(module.bias)
            for module in (self.encoder, self.discriminator):
                for head in getattr(module, "near_zero_heads", list)():
                    nn.init.trunc_normal_(head.weight, std=1e-5, a=-2e-5, b=2e-5)
            if isinstance(self.encoder, NoiseBasisEncoder):
                self.encoder.xavier_basis()

    @property
    def eps_dim(self) -> int:
        cfg = self.config
        return cfg.num_basis * cfg.noise_dim if cfg.encoder_type == "noise_basis" else cfg.noise_dim

    # -- the implicit posterior -------------------------------------------------------------------------------
    def posterior_samples(self, x: Tensor, k: int) -> Tensor:
        """k draws z = f(x, eps) per image, shape (k, B, latent_dim), in one batched encoder pass."""
        b = x.shape[0]
        eps = torch.randn(k * b, self.eps_dim, device=x.device)
        return self.encoder(x.repeat(k, 1, 1, 1), eps).view(k, b, -1)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        """One sample of the implicit q(z|x); there is no mean/logvar to report."""
        return EncoderOutput(z=self.posterior_samples(x, 1)[0])

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decodes the posterior mean, estimated from `proposal_samples` draws of f(x, eps) (not eps = 0: the code of
        zero noise need not be typical of a non-Gaussian q(z|x), while its mean is the usual VAE choice)."""
        return self.decode(self.posterior_samples(x, self.config.proposal_samples).mean(0))

    def moments(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Mean and std of q(z|x) per image from k draws: r_alpha's parameters (detached: for any fixed r_alpha the
        Sec. 4 identity holds, and T(x, z~) + log r_alpha(z|x) then has the gradient of log q(z|x) in z)."""
        with torch.no_grad():
            if self.config.encoder_type == "noise_basis":  # exact in x, from the basis moments (k is not needed)
                mean, var = self.encoder.moments(x)
            else:
                draws = self.posterior_samples(x, k)
                mean, var = draws.mean(0), draws.var(0)
            return mean, (var + VARIANCE_FLOOR).sqrt()

    def posterior_gaussian(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of the diagonal Gaussian moment-matched to q(z|x) from `proposal_samples` draws (exact
        basis moments for noise_basis): the proposal of `log_importance_weights` and AIS's start="posterior"."""
        mean, std = self.moments(x, self.config.proposal_samples)
        return mean, 2 * std.log()

    def codes(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | float]:
        """One z ~ q(z|x) per image, the code T scores, and what is added to T to estimate log q(z|x) - log p(z):
        (z, z, 0) without adaptive contrast; with it (Sec. 4) z~ = (z - mu) / sigma and log r_alpha(z|x) - log p(z),
        mu and sigma detached, from `contrast_samples` draws, the exact basis moments, or the batch's own basis
        draws (`basis_moments="batch"`, the authors')."""
        cfg = self.config
        if not cfg.adaptive_contrast:
            z = self.encode(x).z
            return z, z, 0.0
        if cfg.basis_moments == "batch":
            z, mean, var = self.encoder.sample_with_moments(x, torch.randn(len(x), self.eps_dim, device=x.device))
            mean, std = mean.detach(), (var.detach() + VARIANCE_FLOOR).sqrt()
        else:
            z = self.encode(x).z
            mean, std = self.moments(x, cfg.contrast_samples)
        return z, (z - mean) / std, log_normal(z, mean, 2 * std.log()) - log_normal(z)

    # -- the two players ------------------------------------------------------------------------------------------
    def discriminator_loss(self, batch) -> LossOutput:
        """Eq. 3.3 on (x, z) against (x, z_p ~ N(0, I)); under adaptive contrast on (x, z~), N(0, I) standing in for
        the normalised r_alpha."""
        x, _ = batch
        with torch.no_grad():
            _, scored, _ = self.codes(x)
        return avb_discriminator_loss(self.discriminator, x, scored, torch.randn_like(scored))

    def loss(self, batch) -> LossOutput:
        x, _ = batch
        reconstruction, kl = (term.mean() for term in self.loss_terms(x))
        # kl_estimate: the mean of T (plus the explicit r_alpha terms under adaptive contrast) estimates
        # KL(q(z|x) || p(z)), which is >= 0 in expectation although single values of T can be negative.
        return LossOutput(reconstruction + kl, {"reconstruction": reconstruction, "kl_estimate": kl})

    def loss_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per image, -log p(x|z) and T's estimate of log q(z|x) - log p(z) at one z ~ q(z|x) (B,) each: the negated
        eq. 3.7 objective is their sum (Sec. 4's form under adaptive contrast)."""
        z, scored, correction = self.codes(x)
        return -self.log_likelihood(self.decoder_logits(z), x), self.discriminator(x, scored) + correction

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    @torch.no_grad()
    def objective_elbo(self, x: Tensor, draws: int = 8) -> Tensor:
        """The training objective's own estimate of the ELBO per image (B,): -(reconstruction + T's KL estimate), the
        negated generator loss of eq. 3.7, averaged over `draws` noise draws. If T estimates the KL correctly this is
        a lower bound on log p(x); where it exceeds an AIS estimate of log p(x), T underestimates the KL."""
        total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for _ in range(draws):
            reconstruction, kl = self.loss_terms(x)
            total -= (reconstruction + kl).double()
        return total / draws

    # -- test log-likelihood --------------------------------------------------------------------------------------
    # log_importance_weights: GaussianProposalMixin's, from `posterior_gaussian`. q(z|x) has no density, so the
    # proposal is the Gaussian moment-matched to it; E_g[w] = p(x) for any proposal whose support covers the
    # posterior, so the bound stays a stochastic lower bound, only looser. Measured loose: on the bundled avb it gave
    # 207 nats (k=1000) where AIS gives ~102, so evaluation reports AIS (`vae_models.ais`) for AVB, not this bound.
