"""The project's one PyTorch model of the reference (heykeetae/Self-Attention-GAN), with its module names and keys.

Written here from the reference's published architecture (shared/NOTES.md), not from its code. The
benchmarks time it (`reference_torch.py`, `gpu/`) and the import tests read its state dicts as the
reference's own files, which they match:

- its spectral norm is a wrapper module (`l1.0` is `SpectralNorm(ConvTranspose2d)`) holding the
  wrapped conv as `module`, whose `weight` is replaced by the parameters `weight_u` (the vector of
  the weight's first dimension), `weight_v` and `weight_bar` (the unnormalised weight), so the keys
  are `l1.0.module.bias`, `l1.0.module.weight_u`, `l1.0.module.weight_v`, `l1.0.module.weight_bar`;
- each forward runs one power iteration (train and eval mode alike): `v = normalize(W^T u)`,
  `u = normalize(W v)`, `sigma = u . W v`, with `normalize(x) = x / (|x| + 1e-12)`;
- attention `attn<j>` has `query_conv`, `key_conv` (C/8), `value_conv` (C) 1x1 convs with bias and
  a `gamma` of shape (1,); it returns the map, softmax over the keys;
- the blocks are `l1`..`l4` (`nn.Sequential`), `last` a Sequential; at 64x64 `l4` is assigned first,
  so it is the first key of the file, as in the reference.

`conv_dim` other than 64 sizes the attention blocks from it (the reference hard-codes 128 and 64,
its values at conv_dim 64), which lets the tests run a small network. `channels` (default 3, the
reference's RGB) sets the image channels of G's last and D's first conv, for grey data.
"""

import torch
from torch import nn


def _normalize(x, eps=1e-12):
    return x / (x.norm() + eps)


class SpectralNorm(nn.Module):
    """Wraps `module`; its `weight` becomes `weight_bar` / sigma, with `weight_u` and `weight_v` stored."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        weight = module.weight
        height = weight.shape[0]
        width = weight.view(height, -1).shape[1]
        del module._parameters["weight"]
        module.register_parameter("weight_u", nn.Parameter(_normalize(weight.data.new(height).normal_()), False))
        module.register_parameter("weight_v", nn.Parameter(_normalize(weight.data.new(width).normal_()), False))
        module.register_parameter("weight_bar", nn.Parameter(weight.data))

    def power_iteration(self):
        """One power-iteration step (updates u and v); returns sigma."""
        u, v, w = self.module.weight_u, self.module.weight_v, self.module.weight_bar
        matrix = w.view(w.shape[0], -1)
        v.data = _normalize(torch.mv(matrix.data.t(), u.data))
        u.data = _normalize(torch.mv(matrix.data, v.data))
        return u.dot(matrix.mv(v))

    def forward(self, x):
        sigma = self.power_iteration()
        self.module.weight = self.module.weight_bar / sigma
        return self.module(x)


class SelfAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        batch, channels, height, width = x.shape
        queries = self.query_conv(x).view(batch, -1, height * width).permute(0, 2, 1)
        keys = self.key_conv(x).view(batch, -1, height * width)
        attention = torch.softmax(torch.bmm(queries, keys), dim=-1)
        values = self.value_conv(x).view(batch, -1, height * width)
        out = torch.bmm(values, attention.permute(0, 2, 1)).view(batch, channels, height, width)
        return self.gamma * out + x, attention


def _up(cin, cout, *args):
    return nn.Sequential(SpectralNorm(nn.ConvTranspose2d(cin, cout, 4, *args)), nn.BatchNorm2d(cout), nn.ReLU())


def _down(cin, cout):
    return nn.Sequential(SpectralNorm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1))


class Generator(nn.Module):
    def __init__(self, z_dim=128, conv_dim=64, channels=3):
        super().__init__()
        self.l4 = _up(conv_dim * 2, conv_dim, 2, 1)
        self.l1 = _up(z_dim, conv_dim * 8)
        self.l2 = _up(conv_dim * 8, conv_dim * 4, 2, 1)
        self.l3 = _up(conv_dim * 4, conv_dim * 2, 2, 1)
        self.last = nn.Sequential(nn.ConvTranspose2d(conv_dim, channels, 4, 2, 1), nn.Tanh())
        self.attn1 = SelfAttention(conv_dim * 2)
        self.attn2 = SelfAttention(conv_dim)

    def forward(self, z):
        out = self.l3(self.l2(self.l1(z.view(z.size(0), z.size(1), 1, 1))))
        out, p1 = self.attn1(out)
        out, p2 = self.attn2(self.l4(out))
        return self.last(out), p1, p2


class Discriminator(nn.Module):
    def __init__(self, conv_dim=64, channels=3):
        super().__init__()
        self.l4 = _down(conv_dim * 4, conv_dim * 8)
        self.l1 = _down(channels, conv_dim)
        self.l2 = _down(conv_dim, conv_dim * 2)
        self.l3 = _down(conv_dim * 2, conv_dim * 4)
        self.last = nn.Sequential(nn.Conv2d(conv_dim * 8, 1, 4))
        self.attn1 = SelfAttention(conv_dim * 4)
        self.attn2 = SelfAttention(conv_dim * 8)

    def forward(self, x):
        out, p1 = self.attn1(self.l3(self.l2(self.l1(x))))
        out, p2 = self.attn2(self.l4(out))
        return self.last(out).squeeze(), p1, p2


def converge_power_iterations(model, iterations):
    """Runs each spectral norm's power iteration `iterations` times; returns the last step's largest |u change|."""
    change = 0.0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SpectralNorm):
                for _ in range(iterations):
                    before = module.module.weight_u.clone()
                    module.power_iteration()
                change = max(change, float((module.module.weight_u - before).abs().max()))
    return change
