"""The leaner training step computes what the old one did: epoch means of the loss, the fused Adam, and the
per-step overhead measurement of ``aelens bench`` (its own bare step beside each aelens step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aelens
from aelens.models import nets
from aelens.models.nets import Decoder, Encoder, Geometry, Networks
from aelens.objectives.base import EpochSums, adam
from aelens.storage import load_split
from aelens.training.callbacks import read_metrics
from conftest import quick_config


def test_epoch_loss_is_the_frame_weighted_mean_of_the_step_losses(tiny_data, tmp_path):
    """Every step logged (log_every 1): train_loss_epoch is the batch-size-weighted mean of that epoch's step losses
    (the last batch is smaller), as Lightning's on_epoch mean was; the tagger's extra (angle error) is logged too."""
    cfg = quick_config(
        tiny_data, "tagger", **{"train.epochs": 2, "train.log_every": 1, "train.batch_size": 48}
    ).with_overrides({"snapshots.enabled": False})
    run = aelens.train(cfg, out=tmp_path / "t")
    n_train = len(load_split(run / "split.npz")["train"])
    sizes = [48] * (n_train // 48) + ([n_train % 48] if n_train % 48 else [])
    rows = read_metrics(run / "metrics.csv")
    steps = [r["train_loss_step"] for r in rows if "train_loss_step" in r]
    epochs = [r["train_loss_epoch"] for r in rows if "train_loss_epoch" in r]
    assert len(steps) == 2 * len(sizes) and len(epochs) == 2
    for e in range(2):
        losses = np.array(steps[e * len(sizes) : (e + 1) * len(sizes)])
        assert epochs[e] == pytest.approx(float(np.dot(losses, sizes) / sum(sizes)), rel=1e-5)
    assert sum("train_angle_mae_deg" in r for r in rows) == 2


def test_epoch_sums_weight_by_frames():
    sums = EpochSums()
    sums.add({"loss": torch.tensor(1.0), "err": torch.tensor(10.0)}, 3)
    sums.add({"loss": torch.tensor(3.0), "err": torch.tensor(20.0)}, 1)
    means = sums.means()
    assert float(means["loss"]) == 1.5 and float(means["err"]) == 12.5


def test_fused_adam_follows_the_per_tensor_loop():
    """Same gradients in, same weights out: 20 steps on parameters of the AE's shapes with identical planted
    gradients give the per-tensor loop's weights to float rounding; and training the AE itself for six steps gives
    the same loss curve (to 2e-4: different rounding moves later gradients a little)."""
    geometry = Geometry(1, 32, 32)
    torch.manual_seed(0)
    shapes = [p.shape for p in Networks(Encoder(geometry), Decoder(geometry)).parameters()]
    start = [torch.randn(s) for s in shapes]
    fused_p = [torch.nn.Parameter(t.clone()) for t in start]
    loop_p = [torch.nn.Parameter(t.clone()) for t in start]
    fused_opt, loop_opt = adam(fused_p, 1e-3), torch.optim.Adam(loop_p, lr=1e-3, foreach=False)
    assert fused_opt.defaults["fused"] is True
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        for a, b in zip(fused_p, loop_p):
            a.grad = torch.randn(a.shape, generator=gen) * 0.01
            b.grad = a.grad.clone()
        fused_opt.step()
        loop_opt.step()
    for a, b, s in zip(fused_p, loop_p, start):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-6)
        assert (a - s).abs().max() > 1e-3  # they moved

    x = torch.rand(6, 16, 1, 32, 32, generator=torch.Generator().manual_seed(0))

    def losses(make_opt):
        torch.manual_seed(0)
        model = Networks(Encoder(geometry), Decoder(geometry))
        opt, out = make_opt(model.parameters()), []
        for batch in x:
            loss = F.mse_loss(model.reconstruct(batch), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    fused_losses = losses(lambda p: adam(p, 1e-3))
    np.testing.assert_allclose(fused_losses, losses(lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False)), rtol=2e-4)


def test_step_overhead_pairs_every_step_and_restores_the_networks(tiny_data, tmp_path):
    """The bench's overhead figure: one bare step beside each aelens step, on tiny networks; the real widths are
    back afterwards, also when training fails inside."""
    from aelens.bench.measures import step_overhead, tiny_networks

    res = step_overhead(tiny_data, tmp_path / "o", steps=12, batch=4)
    assert res["steps"] == 12 + 10 - 1 - 5  # 22 steps, 21 intervals, the first 5 left out
    assert res["bare_step_ms"] > 0 and res["aelens_step_ms"] > 0
    assert res["overhead_ms_iqr"][0] <= res["overhead_ms"] <= res["overhead_ms_iqr"][1]
    assert nets.WIDTH == (64, 64, 128)
    with pytest.raises(RuntimeError), tiny_networks():
        assert Encoder(Geometry(1, 32, 32)).conv1[0].out_channels == 4
        raise RuntimeError("inside")
    assert nets.WIDTH == (64, 64, 128) and Encoder(Geometry(1, 32, 32)).conv1[0].out_channels == 64


def test_restored_adam_moments_take_the_weights_layout():
    """A checkpoint stores tensors in the standard layout; the fused kernel reads a channels-last weight and its
    moments as flat memory. Without ``match_state_layout`` a reload changes the next steps (planted here: it does);
    with it, reloaded training equals uninterrupted training exactly."""
    from aelens.objectives.base import match_state_layout

    def run(reload: bool, fix: bool) -> torch.Tensor:
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last))
        opt = adam([p], 1e-2)
        gen = torch.Generator().manual_seed(1)
        for i in range(6):
            p.grad = torch.randn(p.shape, generator=gen).contiguous(memory_format=torch.channels_last)
            opt.step()
            if i == 2 and reload:
                saved = opt.state_dict()
                saved["state"][0] = {k: v.contiguous() for k, v in saved["state"][0].items()}  # as from a file
                opt = adam([p], 1e-2)
                opt.load_state_dict(saved)
                if fix:
                    match_state_layout(opt)
        return p.detach().clone()

    straight = run(reload=False, fix=False)
    assert torch.equal(run(reload=True, fix=True), straight)
    assert not torch.allclose(run(reload=True, fix=False), straight, atol=1e-3)


def test_startup_figure_times_fresh_interpreters_and_checks_the_error_exit(tmp_path, monkeypatch):
    """The bench's start-up figure: three fresh interpreters, each timed; the missing-data case must exit 2 (a
    changed exit code is an error, not a figure)."""
    import subprocess

    from aelens.bench import measures as bench_measures

    res = bench_measures.startup_seconds(tmp_path, repeats=1)
    assert set(res) == {"import_aelens", "help", "missing_data_error"}
    assert all(0 < v < 60 for v in res.values())
    real_run = subprocess.run

    def wrong_exit(args, **kw):
        out = real_run(args, **kw)
        return subprocess.CompletedProcess(args, 0 if "missing.npy" in " ".join(args) else out.returncode, "", "")

    monkeypatch.setattr(bench_measures.subprocess, "run", wrong_exit)
    with pytest.raises(RuntimeError, match="startup missing_data_error: exit code 0, expected 2"):
        bench_measures.startup_seconds(tmp_path, repeats=1)
