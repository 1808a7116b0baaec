"""A small convolutional MNIST classifier: the judge for the sample-quality metrics.

It is not a member of the VAE family: it is a `HubModel` (validated config, strict safetensors loading, Hub mixin)
without the generative interface, so it is saved, loaded and pushed exactly like the models it judges.
Two metrics use it (see `metrics.py`): the classifier-feature Fréchet distance (Heusel et al. 2017's FID, eq. 6,
computed on this network's penultimate features instead of Inception-v3's, so the numbers are NOT Inception FIDs)
and the conditional accuracy of a CVAE (share of samples asked for digit d that this network labels d).

Architecture (in the spirit of the classic Keras MNIST CNN, ~99.2% test accuracy): per entry of hidden_dims a
3x3 convolution + activation + 2x2 max-pooling, then dropout, a fully connected layer of width latent_dim (the
features), dropout, and a linear layer to the class logits. Objective: cross-entropy of the labels, mean over
the batch. Trained on grey-level images (binarize="none").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import HubModel, LossOutput, evaluating
from .blocks import ACTIVATIONS, IMAGE_SHAPE, ConfigError, ModelConfig
from .registry import ModelSpec, Paper, register_model


@dataclass
class ClassifierConfig(ModelConfig):
    model_type: str = "classifier"
    backbone: str = "conv"  # must be "conv": the classifier is always convolutional
    hidden_dims: tuple[int, ...] = (32, 64)  # channels of the 3x3 conv layers; each halves the resolution (pooling)
    latent_dim: int = 128  # width of the penultimate layer: the features of the classifier-feature FD
    dropout: float = 0.25  # dropout probability before each fully connected layer (regularises; off in eval)
    num_classes: int = 10  # number of labels (digits)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backbone != "conv":
            raise ConfigError(f"the classifier is convolutional: backbone must be 'conv', got {self.backbone!r}")
        if not 1 <= len(self.hidden_dims) <= 4:
            raise ConfigError(f"hidden_dims lists 1 to 4 conv layers (28 px halves each time), got {self.hidden_dims}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {self.num_classes}")


@register_model
class MNISTClassifier(HubModel):
    config_class = ClassifierConfig
    spec = ModelSpec(
        name="classifier",
        description="a small convolutional MNIST classifier, the judge of the sample-quality metrics",
        paper=Paper("Gradient-Based Learning Applied to Document Recognition", "LeCun, Bottou, Bengio & Haffner", 1998),
        kind="classifier",
        default_binarize="none",  # it judges generated grey-level images, so it trains on grey levels
    )

    def __init__(self, config: ClassifierConfig):
        super().__init__(config)
        act = ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        channels, size = 1, IMAGE_SHAPE[1]
        for width in config.hidden_dims:
            layers += [nn.Conv2d(channels, width, 3, padding=1), act(), nn.MaxPool2d(2)]
            channels, size = width, size // 2
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(channels * size * size, config.latent_dim), act())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.latent_dim, config.num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, latent_dim): the embedding the Fréchet distance compares."""
        if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"the classifier expects images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.fc(self.conv(x.float()))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) for images (B, 1, 28, 28) in [0, 1]."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """The most likely label of each image (B,), computed in eval mode (no dropout) and in batches."""
        with evaluating(self):
            return torch.cat([self(x[i:i + batch_size].to(self.device)).argmax(1).cpu()
                              for i in range(0, len(x), batch_size)]) if len(x) else torch.empty(0, dtype=torch.long)

    def loss(self, batch) -> LossOutput:
        x, labels = batch
        cross_entropy = F.cross_entropy(self(x), labels)
        return LossOutput(cross_entropy, {"cross_entropy": cross_entropy})
