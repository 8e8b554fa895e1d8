import pytest
import torch

from aelens.models.inference import inference_copy
from aelens.models.nets import (
    AngleReadout,
    ConvTranspose2d,
    Decoder,
    Encoder,
    Geometry,
    Networks,
    OverlapAddConvTranspose2d,
    channel_sums,
    fast_inference_layout,
    fold_batchnorm,
)


@pytest.mark.parametrize("c,h,w", [(1, 50, 50), (1, 24, 24), (3, 37, 61), (2, 64, 48), (1, 51, 25)])
def test_decoder_restores_exact_shape(c, h, w):
    g = Geometry(c, h, w)
    enc, dec = Encoder(g, 16), Decoder(g, 16)
    x = torch.rand(3, c, h, w)
    z = enc(x)
    assert z.shape == (3, 16)
    assert dec(z).shape == (3, c, h, w)


def test_reference_shapes_for_50px():
    g = Geometry(1, 50, 50)
    assert g.feature_hw == (9, 9)
    assert g.feature_dim == 128 * 81
    enc = Encoder(g)
    x = torch.rand(2, 1, 50, 50)
    h = enc.pool1(enc.conv1(x))
    assert h.shape[-1] == 24
    h = enc.pool2(enc.conv2(h))
    assert h.shape[-1] == 11
    assert enc.conv3(h).shape[-2:] == (9, 9)


@pytest.mark.parametrize("dim", [1, 2, 16, 40])
def test_decoder_takes_any_embedding_dim(dim):
    dec = Decoder(Geometry(1, 32, 32), dim)
    assert dec(torch.randn(4, dim)).shape == (4, 1, 32, 32)


def test_fold_batchnorm_is_the_same_function():
    torch.manual_seed(0)
    g = Geometry(1, 40, 36)
    nets = Networks(Encoder(g, 8), Decoder(g, 8), AngleReadout(8))
    # give BatchNorm non-trivial statistics and affine parameters
    nets.train()
    for _ in range(3):
        nets.reconstruct(torch.rand(16, 1, 40, 36))
    for m in nets.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    nets.eval()
    folded = fold_batchnorm(nets)
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in folded.modules())
    x = torch.rand(5, 1, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(folded.reconstruct(x), nets.reconstruct(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(folded.latent(x, "fc2"), nets.latent(x, "fc2"), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(folded.predict(x), nets.predict(x), rtol=1e-4, atol=1e-5)


def trained_like(g: Geometry, negative_scales: bool) -> Networks:
    """Networks with non-trivial BatchNorm statistics and a non-zero output layer."""
    torch.manual_seed(1)
    nets = Networks(Encoder(g, 8), Decoder(g, 8), AngleReadout(8))
    torch.nn.init.normal_(nets.decoder.out.weight, std=0.1)
    nets.train()
    for _ in range(3):
        nets.reconstruct(torch.rand(16, g.channels, g.height, g.width))
    for m in nets.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.weight.data.uniform_(-1.5 if negative_scales else 0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return nets.eval()


@pytest.mark.parametrize("c,h,w", [(1, 50, 50), (3, 37, 61), (1, 51, 25)])
def test_inference_copy_is_the_same_function(c, h, w):
    """Folded BatchNorm, ReLU after pooling and the overlap-add output layer change the speed, not the answers, even
    with negative BatchNorm scales (pooling commutes with ReLU only once BatchNorm is folded into the convolution)."""
    g = Geometry(c, h, w)
    nets = trained_like(g, negative_scales=True)
    fast = inference_copy(nets)
    assert isinstance(fast.decoder.out, OverlapAddConvTranspose2d)
    assert isinstance(fast.encoder.pool1[1], torch.nn.ReLU) and len(fast.encoder.conv1) == 1
    x = torch.rand(6, c, h, w).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for fn in ("reconstruct", "latent", "predict"):
            torch.testing.assert_close(getattr(fast, fn)(x), getattr(nets, fn)(x), rtol=1e-4, atol=1e-5)
        z = torch.randn(4, 8)
        torch.testing.assert_close(fast.decode(z), nets.decode(z), rtol=1e-4, atol=1e-5)


def test_fast_layout_leaves_unfolded_batchnorm_alone():
    """With BatchNorm still between convolution and ReLU, moving the ReLU would be wrong: nothing moves."""
    nets = trained_like(Geometry(1, 32, 32), negative_scales=True)
    import copy

    same = fast_inference_layout(copy.deepcopy(nets))
    assert len(same.encoder.conv1) == 3 and isinstance(same.encoder.pool1, torch.nn.MaxPool2d)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(same.reconstruct(x), nets.reconstruct(x), rtol=1e-4, atol=1e-5)


def test_angle_readout_returns_unit_vectors():
    out = AngleReadout(16)(torch.randn(10, 16))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(10))


def _grads(layer, x, grad, bf16):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        y = layer(x)
    y.backward(grad.to(y.dtype))
    return y.detach(), x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize(
    "c_in, c_out, k, stride, out_pad, size",
    [(8, 8, 2, 2, (0, 0), 6), (8, 6, 2, 2, (1, 1), 5), (8, 8, 3, 1, (0, 0), 7), (8, 1, 3, 1, (0, 0), 9)],
)
def test_transposed_conv_training_backward_matches_pytorch(bf16, c_in, c_out, k, stride, out_pad, size):
    """The decoder's ConvTranspose2d: same output and input/weight gradients as PyTorch's layer, bit for bit; the bias
    gradient (summed differently) to rounding; in fp32 and under bf16 autocast, channels-last."""
    torch.manual_seed(0)
    ours = ConvTranspose2d(c_in, c_out, k, stride=stride, output_padding=out_pad).to(memory_format=torch.channels_last)
    theirs = torch.nn.ConvTranspose2d(c_in, c_out, k, stride=stride, output_padding=out_pad)
    theirs.load_state_dict(ours.state_dict())
    theirs = theirs.to(memory_format=torch.channels_last)
    x = torch.randn(4, c_in, size, size).contiguous(memory_format=torch.channels_last)
    out_size = (size - 1) * stride + k + out_pad[0]
    grad = torch.randn(4, c_out, out_size, out_size).contiguous(memory_format=torch.channels_last)
    a, b = _grads(ours, x, grad, bf16), _grads(theirs, x, grad, bf16)
    for got, want in zip(a[:3], b[:3]):
        assert got.dtype == want.dtype and torch.equal(got, want)
    assert a[3].dtype == b[3].dtype == torch.float32
    tol = 2e-2 if bf16 else 1e-5  # bf16: one rounding of the sum either way
    torch.testing.assert_close(a[3], b[3], rtol=tol, atol=tol * b[3].abs().max().item())
    assert a[3].abs().max() > 1  # the gradient is not trivially zero


def test_channel_sums_planted():
    g = torch.zeros(3, 4, 5, 6)
    for c in range(4):
        g[:, c] = c + 1
    want = torch.tensor([(c + 1) * 90.0 for c in range(4)])
    assert torch.equal(channel_sums(g), want)
    assert torch.equal(channel_sums(g.contiguous(memory_format=torch.channels_last).bfloat16()).float(), want)


@pytest.mark.parametrize("bf16", [False, True])
def test_encoder_pools_before_relu_with_the_same_values_and_gradients(bf16):
    """Encoder.forward runs conv, BN, max-pool, ReLU; the reference order conv, BN, ReLU, max-pool gives the same
    latent and the same gradients for every parameter and the input, bit for bit (training mode)."""
    torch.manual_seed(0)
    enc = Encoder(Geometry(1, 30, 30), 8).to(memory_format=torch.channels_last)

    def reference_order(x):
        x = enc.pool1(enc.conv1(x))
        x = enc.pool2(enc.conv2(x))
        return enc.fc1(enc.conv3(x))

    x = torch.randn(6, 1, 30, 30).contiguous(memory_format=torch.channels_last)
    results = []
    for forward in (enc, reference_order):
        enc.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            z = forward(xi)
        (z.float() * torch.arange(8.0)).sum().backward()
        results.append([z.detach(), xi.grad] + [p.grad for p in enc.parameters()])
    for got, want in zip(*results):
        assert torch.equal(got, want)
    assert results[0][1].abs().max() > 0
