"""The encoder and decoder, defined once and shared by every objective (AE, embedding decoder, direction tagger).

Only ``nn.Module`` definitions and pure module transforms live here: no I/O, no training loop.

Reference design (50 x 50 input): encoder 50 -conv3-> 48 -pool-> 24 -conv3-> 22 -pool-> 11 -conv3-> 9, flatten,
Linear -> latent ("fc1"); decoder Linear -> 128 x 9 x 9 ("fc2"), then transposed convolutions 9 -> 11 -> 22 -> 24 ->
48 -> 50. Any H, W >= 24 and any channel count work; odd sizes are restored exactly with ``output_padding``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..data.augment import circle_mask

WIDTH = (64, 64, 128)  # channels of conv1, conv2, conv3 (the reference's)


@dataclass(frozen=True)
class Geometry:
    """Spatial sizes through the encoder for an input of (channels, height, width)."""

    channels: int
    height: int
    width: int

    def _sizes(self, s: int) -> tuple[int, int, int, int, int]:
        s1 = s - 2  # conv1
        p1 = s1 // 2  # pool1
        s2 = p1 - 2  # conv2
        p2 = s2 // 2  # pool2
        s3 = p2 - 2  # conv3
        return s1, p1, s2, p2, s3

    @property
    def feature_hw(self) -> tuple[int, int]:
        return self._sizes(self.height)[4], self._sizes(self.width)[4]

    @property
    def feature_dim(self) -> int:
        h, w = self.feature_hw
        return WIDTH[2] * h * w

    def output_padding(self, which: int) -> tuple[int, int]:
        """Extra row/column for the two stride-2 upsamplings (which = 2: back to conv2's size, 4: to conv1's)."""
        pick = {2: 2, 4: 0}[which]
        return tuple(self._sizes(s)[pick] % 2 for s in (self.height, self.width))


def channel_sums(grad: torch.Tensor) -> torch.Tensor:
    """Per-channel sum of a (b, c, h, w) tensor, as a (c,) tensor of its dtype.

    For bf16/fp16 the sum is a matrix product with a row of ones (accumulated in fp32 by the matrix kernel, then
    rounded once): PyTorch's CPU reduction of a channels-last bf16 tensor over (0, 2, 3) upcasts element by element
    and took ~13 ms for a 64 x 64 x 48 x 48 gradient on 2 cores, the product ~1.3 ms.
    """
    c = grad.shape[1]
    rows = grad.movedim(1, -1).reshape(-1, c)  # a view for channels-last
    if rows.dtype in (torch.bfloat16, torch.float16):
        return torch.mm(torch.ones(1, rows.shape[0], dtype=rows.dtype, device=rows.device), rows)[0]
    return rows.sum(0)


class _TransposedConvFunction(torch.autograd.Function):
    """``conv_transpose2d`` whose backward takes the bias gradient as :func:`channel_sums` of the output gradient.

    Forward and the input/weight gradients are PyTorch's own kernels (``aten.convolution`` /
    ``aten.convolution_backward``): only the bias gradient is computed differently. In PyTorch's CPU backward of a
    transposed convolution on bf16 channels-last tensors the bias gradient took 3/4 of the layer's backward (decoder
    layer 64 -> 64, 24 -> 48: 41 ms of which 31 ms for the bias). Under autocast the inputs are cast as autocast
    would (to its dtype) and the gradients returned in the dtypes of the arguments.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups):
        dtypes = (x.dtype, weight.dtype, bias.dtype)
        if torch.is_autocast_enabled(x.device.type):
            cast = torch.get_autocast_dtype(x.device.type)
            x, weight, bias = x.to(cast), weight.to(cast), bias.to(cast)
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, output_padding, dilation, groups, dtypes)
        with torch.autocast(x.device.type, enabled=False):
            return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, True, output_padding, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, output_padding, dilation, groups, (t_x, t_w, t_b) = ctx.conv
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = grad.to(x.dtype)
        g_x, g_w, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, stride, padding, dilation, True, output_padding, groups, [need_x, need_w, False]
        )
        g_b = channel_sums(grad).to(t_b) if need_b else None
        return (
            g_x.to(t_x) if g_x is not None else None,
            g_w.to(t_w) if g_w is not None else None,
            g_b,
            *([None] * 5),
        )


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, state dict and function) whose CPU training backward computes the bias
    gradient with :func:`channel_sums` (see :class:`_TransposedConvFunction`); elsewhere PyTorch's own path."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or not torch.is_grad_enabled()
            or output_size is not None
            or self.bias is None
            or self.padding_mode != "zeros"
        ):
            return super().forward(x, output_size)
        return _TransposedConvFunction.apply(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.dilation, self.groups
        )


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _deconv_block(c_in: int, c_out: int, k: int, stride: int = 1, output_padding=(0, 0)) -> nn.Sequential:
    return nn.Sequential(
        ConvTranspose2d(c_in, c_out, k, stride=stride, output_padding=output_padding),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """Image (b, c, h, w) float -> latent (b, latent_dim), the output of "fc1" (Linear + BN1d + ReLU).

    Layers, top (closest to the latent) first: ``fc1, conv3, conv2, conv1`` (see :data:`Encoder.LAYERS`).
    """

    LAYERS = ("fc1", "conv3", "conv2", "conv1")

    def __init__(self, geometry: Geometry, latent_dim: int = 16, masked: bool = False):
        super().__init__()
        self.geometry = geometry
        self.latent_dim = latent_dim
        # An encoder trained on rotated crops sees every input through a circular mask (not saved with the weights:
        # the run's config says whether it is on), so the corners cannot tell how a frame was turned.
        self.register_buffer(
            "input_mask", circle_mask(geometry.height, geometry.width) if masked else None, persistent=False
        )
        self.conv1 = _conv_block(geometry.channels, WIDTH[0])
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = _conv_block(WIDTH[0], WIDTH[1])
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = _conv_block(WIDTH[1], WIDTH[2])
        self.fc1 = nn.Sequential(
            nn.Flatten(), nn.Linear(geometry.feature_dim, latent_dim), nn.BatchNorm1d(latent_dim), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_mask is not None:
            x = x * self.input_mask.to(x.dtype)
        x = _block_then_pool(self.conv1, self.pool1, x)
        x = _block_then_pool(self.conv2, self.pool2, x)
        return self.fc1(self.conv3(x))


def _block_then_pool(block: nn.Module, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``pool(block(x))``; for a (conv, BatchNorm, ReLU) block before max-pooling, computed as conv, BatchNorm,
    max-pool, ReLU: ReLU is monotone, so it commutes with max, and the values and gradients are the same bit for bit
    (tested), with ReLU and its backward on a quarter of the values (~4% of a training step)."""
    if (
        isinstance(block, nn.Sequential)
        and len(block) == 3
        and isinstance(block[2], nn.ReLU)
        and isinstance(pool, nn.MaxPool2d)
    ):
        return block[2](pool(block[1](block[0](x))))
    return pool(block(x))


class Decoder(nn.Module):
    """Code (b, in_dim) -> image (b, c, h, w): "fc2" (Linear + BN1d + ReLU) then transposed convolutions.

    ``in_dim`` is the AE latent size or the dimension of a PCA/UMAP embedding. The last layer is linear (no
    activation), as in the reference; the objective is MSE to the target image.
    """

    def __init__(self, geometry: Geometry, in_dim: int = 16):
        super().__init__()
        self.geometry = geometry
        self.in_dim = in_dim
        fh, fw = geometry.feature_hw
        self.fc2 = nn.Sequential(
            nn.Linear(in_dim, geometry.feature_dim), nn.BatchNorm1d(geometry.feature_dim), nn.ReLU(inplace=True)
        )
        self.unflatten = nn.Unflatten(1, (WIDTH[2], fh, fw))
        self.deconv1 = _deconv_block(WIDTH[2], WIDTH[1], 3)
        self.deconv2 = _deconv_block(WIDTH[1], WIDTH[1], 2, 2, geometry.output_padding(2))
        self.deconv3 = _deconv_block(WIDTH[1], WIDTH[0], 3)
        self.deconv4 = _deconv_block(WIDTH[0], WIDTH[0], 2, 2, geometry.output_padding(4))
        self.out = ConvTranspose2d(WIDTH[0], geometry.channels, 3)
        # Start from "predict the mean frame": zero output weights, bias = mean pixel (see set_output_mean). With
        # PyTorch's default init the first output is ~100x too large and the first epochs are spent shrinking it;
        # on 5,000 synthetic frames this halves the validation MSE after 8 epochs (docs/performance.md).
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, 0.5)

    @torch.no_grad()
    def set_output_mean(self, mean: torch.Tensor) -> None:
        """Set the output bias to the per-channel mean pixel of the training frames, shape (channels,)."""
        self.out.bias.copy_(torch.as_tensor(mean, dtype=self.out.bias.dtype).reshape(-1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.unflatten(self.fc2(z))
        x = self.deconv2(self.deconv1(x))
        x = self.deconv4(self.deconv3(x))
        return self.out(x)


class AngleReadout(nn.Module):
    """Latent -> unit vector (cos, sin) of an angle; or -> one scalar for ``kind="linear"``."""

    def __init__(self, latent_dim: int, kind: str = "angle"):
        super().__init__()
        self.kind = kind
        self.linear = nn.Linear(latent_dim, 2 if kind == "angle" else 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.linear(z)
        if self.kind == "angle":
            return nn.functional.normalize(out.float(), dim=1, eps=1e-6)
        return out[:, 0]


# --------------------------------------------------------------------------------------------- inference transforms


@torch.no_grad()
def _fold(layer: nn.Module, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    folded = copy.deepcopy(layer)
    if isinstance(layer, nn.ConvTranspose2d):  # weight (in, out, kh, kw)
        folded.weight.mul_(scale.view(1, -1, 1, 1))
    elif isinstance(layer, nn.Conv2d):  # weight (out, in, kh, kw)
        folded.weight.mul_(scale.view(-1, 1, 1, 1))
    else:  # Linear (out, in)
        folded.weight.mul_(scale.view(-1, 1))
    folded.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return folded


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for inference with every (Conv|ConvTranspose|Linear, BatchNorm) pair inside a Sequential
    folded into one layer: the same function as ``module.eval()``, one pass less per layer."""
    module = copy.deepcopy(module).eval()

    def visit(m: nn.Module) -> None:
        for name, child in m.named_children():
            if isinstance(child, nn.Sequential):
                items = list(child)
                out, i = [], 0
                while i < len(items):
                    a = items[i]
                    b = items[i + 1] if i + 1 < len(items) else None
                    if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and isinstance(
                        b, (nn.BatchNorm1d, nn.BatchNorm2d)
                    ):
                        out.append(_fold(a, b))
                        i += 2
                    else:
                        out.append(a)
                        i += 1
                setattr(m, name, nn.Sequential(*out))
            else:
                visit(child)

    visit(module)
    return module


class OverlapAddConvTranspose2d(nn.Module):
    """Inference form of a stride-1, unpadded ``ConvTranspose2d`` with few output channels (the decoder's last layer).

    One matrix product (pixels x in) @ (in x out*kh*kw) and kh*kw shifted adds into an fp32 output: the same function
    as the transposed convolution, about 2x faster on CPU where oneDNN's kernel for 1-3 output channels is slow.
    """

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        cin, cout, kh, kw = layer.weight.shape
        self.kernel = (kh, kw)
        self.out_channels = cout
        # (in, out, kh, kw) -> (in, kh * kw * out): the columns for kernel tap (i, j) are contiguous per tap
        self.weight = nn.Parameter(layer.weight.detach().permute(0, 2, 3, 1).reshape(cin, kh * kw * cout).clone())
        self.bias = nn.Parameter(layer.bias.detach().clone().float())

    @staticmethod
    def applies_to(layer: nn.Module) -> bool:
        return (
            isinstance(layer, nn.ConvTranspose2d)
            and layer.stride == (1, 1)
            and layer.padding == (0, 0)
            and layer.output_padding == (0, 0)
            and layer.dilation == (1, 1)
            and layer.groups == 1
            and layer.bias is not None
            and layer.out_channels <= 4
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        (kh, kw), cout = self.kernel, self.out_channels
        cols = torch.matmul(x.permute(0, 2, 3, 1), self.weight)  # (n, h, w, kh * kw * cout); channels-last: no copy
        cols = cols.view(n, h, w, kh, kw, cout)
        out = self.bias.to(torch.float32).expand(n, h + kh - 1, w + kw - 1, cout).clone()
        for i in range(kh):
            for j in range(kw):
                out[:, i : i + h, j : j + w] += cols[:, :, :, i, j]
        return out.permute(0, 3, 1, 2)


def fast_inference_layout(module: nn.Module) -> nn.Module:
    """Rewrite a BatchNorm-folded copy (see :func:`fold_batchnorm`) for faster CPU inference, same function:

    - in the encoder, ReLU moves after max-pooling (max and ReLU commute: ReLU runs on a quarter of the values);
    - the decoder's last transposed convolution becomes :class:`OverlapAddConvTranspose2d`.
    Modified in place and returned; a module that still has BatchNorm between a convolution and its ReLU is left as is
    (max-pooling does not commute with a BatchNorm of negative scale).
    """
    for enc in [m for m in module.modules() if isinstance(m, Encoder)]:
        for conv, pool in (("conv1", "pool1"), ("conv2", "pool2")):
            block, pooling = getattr(enc, conv), getattr(enc, pool)
            layers = list(block)
            if (
                len(layers) == 2
                and isinstance(layers[0], nn.Conv2d)
                and isinstance(layers[1], nn.ReLU)
                and isinstance(pooling, nn.MaxPool2d)
            ):
                setattr(enc, conv, nn.Sequential(layers[0]))
                setattr(enc, pool, nn.Sequential(pooling, nn.ReLU(inplace=True)))
    for dec in [m for m in module.modules() if isinstance(m, Decoder)]:
        if OverlapAddConvTranspose2d.applies_to(dec.out):
            dec.out = OverlapAddConvTranspose2d(dec.out)
    return module


class Networks(nn.Module):
    """The networks of one run (any of encoder / decoder / readout may be None), with the inference entry points.

    An objective shares its modules through this container (see ``Objective.networks``); ``fold_batchnorm`` of it
    makes the fast inference copy.
    """

    def __init__(
        self, encoder: Encoder | None = None, decoder: Decoder | None = None, readout: AngleReadout | None = None
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.readout = readout

    def latent(self, x: torch.Tensor, layer: str = "fc1") -> torch.Tensor:
        """fc1: the latent code (for a decoder-only run, ``x`` already is the code); fc2: the decoder's first layer."""
        z = self.encoder(x) if self.encoder is not None else x
        if layer == "fc2":
            if self.decoder is None:
                raise ValueError("this run has no decoder, so no fc2 layer")
            return self.decoder.fc2(z)
        return z

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.encoder(x))
