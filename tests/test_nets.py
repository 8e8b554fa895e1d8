import pytest
import torch

from aelens.nets import AngleReadout, Decoder, Encoder, Geometry, Networks, fold_batchnorm


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


def test_angle_readout_returns_unit_vectors():
    out = AngleReadout(16)(torch.randn(10, 16))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(10))
