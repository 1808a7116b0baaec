"""How many bits a generic lossless compressor needs for a binary image: the input complexity L(x) of Serrà et al.
2020 ("Input complexity and out-of-distribution detection with likelihood-based generative models"), which the
"how digit-like" meter subtracts from the model's code length (vae_models/typicality.py).

The compressor is the one made for bilevel images: JBIG's context modelling (ITU-T T.82). Each pixel, in raster
order, is coded with a probability that depends on its context, the values of 10 already-coded neighbours (the
causal template `TEMPLATE`, shaped like JBIG's three-line template; pixels outside the image count as 0). Where JBIG
adapts each context's probability with the QM coder's state machine, we use the Krichevsky-Trofimov estimator
(Krichevsky & Trofimov 1981): after n0 zeros and n1 ones in a context, P(next = 1) = (n1 + 1/2) / (n0 + n1 + 1).
An arithmetic coder driven by these probabilities spends within 2 bits of the ideal code length

    L(x) = -sum_pixels log2 P(pixel | context, the counts so far),

and for the KT estimator that sum depends only on each context's final counts (the sequential probabilities of a
context's bits multiply to the same value in any order):

    L(x) = -sum_contexts log2 [ Gamma(n0 + 1/2) Gamma(n1 + 1/2) / (pi Gamma(n0 + n1 + 1)) ],

which is what `code_length_bits` computes, for a whole batch at once. A blank image costs a few bits, a thin dash
a few dozen, an MNIST digit about 200 and white noise more than its 784 pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# (row offset, column offset) of the 10 causal neighbours: two pixels left on the current row, five on the row
# above, three on the row above that (JBIG's three-line template)
TEMPLATE = ((-2, -1), (-2, 0), (-2, 1), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (0, -2), (0, -1))
NAME = "JBIG-style context model (10-pixel three-line template) with Krichevsky-Trofimov estimates"


def contexts(bits: Tensor) -> Tensor:
    """The context number (0 .. 2^10 - 1) of every pixel of binary images (N, H, W) -> (N, H, W) int64."""
    n, h, w = bits.shape
    padded = torch.zeros(n, h + 2, w + 4, dtype=torch.int64)
    padded[:, 2:, 2:-2] = bits.long()
    ctx = torch.zeros(n, h, w, dtype=torch.int64)
    for i, (dy, dx) in enumerate(TEMPLATE):
        ctx |= padded[:, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w] << i
    return ctx


def code_length_bits(images: Tensor) -> Tensor:
    """L(x) in bits (N,) float64 of binary images (N, 1, H, W) or (N, H, W) whose values are 0 or 1."""
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images must be (N, 1, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    if not bool(((images == 0) | (images == 1)).all()):
        raise ValueError("images must be binary (0 or 1): binarise them first (typicality.binarize)")
    bits = images.long()
    n = len(bits)
    num_contexts = 1 << len(TEMPLATE)
    index = (contexts(bits) + num_contexts * torch.arange(n).view(n, 1, 1)).flatten()
    ones = torch.zeros(n * num_contexts, dtype=torch.float64).index_add_(0, index, bits.flatten().double())
    total = torch.zeros(n * num_contexts, dtype=torch.float64).index_add_(
        0, index, torch.ones(index.numel(), dtype=torch.float64))
    zeros = total - ones
    log_kt = (torch.lgamma(zeros + 0.5) + torch.lgamma(ones + 0.5) - torch.lgamma(total + 1.0) - math.log(math.pi))
    return -log_kt.view(n, num_contexts).sum(1) / math.log(2)  # unused contexts: lgamma(.5)^2 / pi = 1, i.e. 0 bits
