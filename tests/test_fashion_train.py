"""Trainer on the CPU with a tiny model: a short run, checkpoint round trip, resume, pause, cancel."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from sd_explorer.core.errors import Cancelled, UserError
from sd_explorer.core.fashion.checkpoint import load_checkpoint, save_checkpoint
from sd_explorer.core.fashion.data import load_fashion_mnist
from sd_explorer.core.fashion.model import ModelConfig, build_unet, load_weights
from sd_explorer.core.fashion.train_config import TrainConfig, resume_config
from sd_explorer.core.fashion.trainer import Trainer


@pytest.fixture(scope="module")
def data(fashion_dir):
    return load_fashion_mnist(fashion_dir).subset(0, 48)  # 3 steps of 16 per epoch


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, model=ModelConfig.tiny(), log_every=1, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def synthetic_data(n: int = 1024):
    """Random images and labels: enough for the GPU trainer's graph-vs-eager comparisons."""
    from sd_explorer.core.fashion.data import FashionData

    g = torch.Generator().manual_seed(0)
    return FashionData(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
                       torch.randint(0, 10, (n,), generator=g), "synthetic")


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_short_cpu_run_learns_and_reports(data, tmp_path):
    steps, epochs = [], []
    res = Trainer(cfg(epochs=2, out_dir=str(tmp_path)), data, device="cpu",
                  on_step=steps.append, on_epoch=epochs.append).run()
    assert res.step == 6 and len(res.losses) == 6 and len(res.epoch_losses) == 2
    assert all(torch.isfinite(torch.tensor(res.losses)))
    assert res.losses[-1] < res.losses[0] * 1.5  # sane scale (MSE on unit noise starts near 1)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[-1].total_steps == 6 and steps[-1].eta_s == 0 and steps[0].device == "cpu"
    assert [e.epoch for e in epochs] == [0, 1] and epochs[-1].checkpoint
    assert abs(epochs[0].mean_loss - sum(res.losses[:3]) / 3) < 1e-6
    ckpts = sorted(p.name for p in tmp_path.glob("ckpt-*.safetensors"))
    assert ckpts == ["ckpt-000003.safetensors", "ckpt-000006.safetensors"]
    # a checkpoint loads as a model for sampling
    m = load_weights(tmp_path / "ckpt-000006.safetensors", device="cpu")
    assert torch.equal(m.unet.state_dict()["conv_in.weight"], res.model.state_dict()["conv_in.weight"])


def test_resume_continues_identically(data, tmp_path):
    straight = Trainer(cfg(epochs=2), data, device="cpu").run()
    first = Trainer(cfg(epochs=1, out_dir=str(tmp_path)), data, device="cpu").run()
    resumed = Trainer(resume_config(first.checkpoint, epochs=2), data, device="cpu").run()
    assert resumed.step == 6 and resumed.losses == pytest.approx(straight.losses, abs=0)
    a, b = weights(straight.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_mid_epoch_then_resume(data, tmp_path):
    straight = Trainer(cfg(epochs=2), data, device="cpu").run()
    cancel = threading.Event()

    def on_step(s):
        if s.step == 4:
            cancel.set()

    trainer = Trainer(cfg(epochs=2, out_dir=str(tmp_path)), data, device="cpu", on_step=on_step)
    with pytest.raises(Cancelled):
        trainer.run(cancel=cancel)
    state = load_checkpoint(trainer.last_checkpoint)
    assert state["step"] == 4 and state["epoch"] == 1 and state["step_in_epoch"] == 1
    resumed = Trainer(resume_config(trainer.last_checkpoint), data, device="cpu").run()
    a, b = weights(straight.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.losses == pytest.approx(straight.losses, abs=0)


def test_pause_blocks_between_steps(data):
    pause, seen = threading.Event(), []
    pause.set()
    trainer = Trainer(cfg(epochs=1), data, device="cpu", on_step=seen.append)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("res", trainer.run(pause=pause)))
    thread.start()
    time.sleep(1.0)
    assert seen == [] and thread.is_alive()
    cpu0 = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - cpu0 < 0.25  # waiting, not spinning
    pause.clear()
    thread.join(timeout=120)
    assert box["res"].step == 3


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    unet = build_unet(ModelConfig.tiny())
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    unet(torch.randn(2, 1, 32, 32), torch.tensor([3, 5]), class_labels=torch.tensor([1, 2])).sample.mean().backward()
    opt.step()
    gen = torch.Generator().manual_seed(9)
    p1 = save_checkpoint(tmp_path, unet, opt, {"step": 7, "epoch": 0}, ModelConfig.tiny().to_json(),
                         {"gen": gen.get_state()})
    p2 = save_checkpoint(tmp_path, unet, opt, {"step": 7, "epoch": 0})
    assert p1.name == "ckpt-000007.safetensors" and p2.name == "ckpt-000007-1.safetensors"  # never overwrites
    assert not list(tmp_path.glob("*.tmp"))
    torch.manual_seed(1)
    unet2 = build_unet(ModelConfig.tiny())
    opt2 = torch.optim.AdamW(unet2.parameters(), lr=1e-3)
    state = load_checkpoint(p1, unet2, opt2)
    assert state["step"] == 7
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), unet2.state_dict().values()))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for idx in s1["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(s1["state"][idx][key]), torch.as_tensor(s2["state"][idx][key]))
    assert s1["param_groups"] == s2["param_groups"]
    # a channels_last model (as trained on CUDA) gets optimizer state in its own layout on resume
    unet3 = build_unet(ModelConfig.tiny()).to(memory_format=torch.channels_last)
    opt3 = torch.optim.AdamW(unet3.parameters(), lr=1e-3)
    load_checkpoint(p1, unet3, opt3)
    names = [n for n, _ in unet3.named_parameters()]
    idx = names.index("down_blocks.0.resnets.0.conv1.weight")
    conv = dict(unet3.named_parameters())[names[idx]]
    assert conv.stride() != conv.contiguous().stride()
    assert opt3.state[conv]["exp_avg"].stride() == conv.stride()
    assert torch.equal(opt3.state[conv]["exp_avg"], s1["state"][idx]["exp_avg"])
    g2 = torch.Generator()
    g2.set_state(state["rng"]["gen"])
    assert torch.equal(torch.rand(3, generator=g2), torch.rand(3, generator=gen))


def test_bad_inputs(data, tmp_path):
    with pytest.raises(UserError, match="epochs"):
        Trainer(cfg(epochs=0), data, device="cpu")
    with pytest.raises(UserError, match="batch"):
        Trainer(cfg(batch_size=0), data, device="cpu")
    with pytest.raises(UserError, match="does not exist"):
        Trainer(cfg(resume=str(tmp_path / "missing.safetensors")), data, device="cpu").run()
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="readable"):
        load_checkpoint(tmp_path / "junk.safetensors")
    big = ModelConfig.tiny()
    big.block_out_channels = (16, 32)
    p = save_checkpoint(tmp_path, build_unet(big), None, {"step": 1})
    with pytest.raises(UserError, match="does not fit"):
        load_checkpoint(p, build_unet(ModelConfig.tiny()))


@pytest.mark.gpu
@pytest.mark.gpu
def test_cuda_graph_training_matches_eager():
    """The captured whole step trains exactly like the eager step (same randomness, same kernels)."""
    synthetic = synthetic_data()
    runs = {}
    for graph in (True, False):
        c = TrainConfig(epochs=2, batch_size=128, seed=3, cuda_graph=graph, cudnn_benchmark=False)
        runs[graph] = Trainer(c, synthetic, device="cuda").run()
    a, b = torch.tensor(runs[True].losses), torch.tensor(runs[False].losses)
    assert len(a) == 16
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), (a - b).abs().max()
    wa, wb = weights(runs[True].model), weights(runs[False].model)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-3


@pytest.mark.gpu
@pytest.mark.gpu
def test_compiled_model_in_the_step_graph_trains_like_eager():
    """torch.compile'd UNet captured in the whole-step graph: the same run within bf16 rounding."""
    synthetic = synthetic_data()
    torch._dynamo.reset()
    runs = {}
    for compiled in (True, False):
        c = TrainConfig(epochs=2, batch_size=128, seed=3, compile=compiled, cudnn_benchmark=False)
        trainer = Trainer(c, synthetic, device="cuda")
        runs[compiled] = trainer.run()
        assert trainer._graph
    torch._dynamo.reset()
    a, b = torch.tensor(runs[True].losses), torch.tensor(runs[False].losses)
    assert len(a) == 16 and torch.allclose(a, b, rtol=5e-2, atol=1e-3), (a - b).abs().max()


def test_cancel_raised_by_the_step_callback_still_writes_a_checkpoint(data, tmp_path):
    """The TUI's progress report raises ``Cancelled`` once stop is pressed: the run must stay resumable."""
    straight = Trainer(cfg(epochs=2), data, device="cpu").run()

    def on_step(s):
        if s.step == 2:
            raise Cancelled("stopped from the callback")

    trainer = Trainer(cfg(epochs=2, out_dir=str(tmp_path)), data, device="cpu", on_step=on_step)
    with pytest.raises(Cancelled):
        trainer.run()
    state = load_checkpoint(trainer.last_checkpoint)
    assert state["step"] == 2 and state["epoch"] == 0 and state["step_in_epoch"] == 2
    resumed = Trainer(resume_config(trainer.last_checkpoint), data, device="cpu").run()
    assert resumed.losses == pytest.approx(straight.losses, abs=0)


def test_cancel_raised_by_the_epoch_callback_between_checkpoints_writes_one(data, tmp_path):
    def on_epoch(e):
        raise Cancelled("stopped while sampling the per-class grid")

    trainer = Trainer(cfg(epochs=3, checkpoint_every_epochs=2, out_dir=str(tmp_path)), data, device="cpu",
                      on_epoch=on_epoch)
    with pytest.raises(Cancelled):
        trainer.run()
    state = load_checkpoint(trainer.last_checkpoint)
    assert state["step"] == 3 and state["epoch"] == 0 and state["step_in_epoch"] == 3


def test_slow_steps_are_reported_by_time_as_well(data):
    """On a CPU a step of the chapter's model takes seconds: the pane must not wait 10 steps for news."""
    by_count, by_time = [], []
    Trainer(cfg(epochs=1, log_every=100), data, device="cpu", on_step=by_count.append).run()
    Trainer(cfg(epochs=1, log_every=100, log_seconds=1e-9), data, device="cpu", on_step=by_time.append).run()
    assert [s.step for s in by_count] == [3]  # only the epoch's last step
    assert [s.step for s in by_time] == [1, 2, 3]
    with pytest.raises(UserError, match="log_seconds"):
        cfg(log_seconds=float("nan")).validate()


def test_ema_is_the_moving_average_of_the_weights():
    from sd_explorer.core.ema import EMA

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(net, 0.9)
    want = {k: v.clone() for k, v in net.state_dict().items()}
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))  # in place, as the optimizer does
        ema.update()
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                want[k] = 0.9 * want[k] + 0.1 * v
    got = ema.state_dict()
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    assert not torch.allclose(got["0.weight"], net.state_dict()["0.weight"])
    with pytest.raises(ValueError):
        EMA(net, 1.0)


def test_ema_run_checkpoints_resumes_and_samples_from_the_average(data, tmp_path):
    straight = Trainer(cfg(epochs=2, ema_decay=0.5), data, device="cpu").run()
    assert straight.ema_model is not None
    a, b = weights(straight.model), weights(straight.ema_model)
    assert not torch.equal(a["conv_in.weight"], b["conv_in.weight"])
    first = Trainer(cfg(epochs=1, ema_decay=0.5, out_dir=str(tmp_path)), data, device="cpu").run()
    assert load_checkpoint(first.checkpoint)["ema"]
    resumed = Trainer(resume_config(first.checkpoint, epochs=2), data, device="cpu").run()
    e1, e2 = weights(straight.ema_model), weights(resumed.ema_model)
    assert all(torch.equal(e1[k], e2[k]) for k in e1)  # the average continues exactly
    sampler = load_weights(resumed.checkpoint, device="cpu")  # a checkpoint samples from its average
    assert torch.equal(sampler.unet.state_dict()["conv_in.weight"], e2["conv_in.weight"])
    with pytest.raises(UserError, match="ema_decay"):
        cfg(ema_decay=1.0).validate()


# ---------------------------------------------------------------- learning-rate warm-up and decay (issue 24)
def test_lr_schedule_warms_up_then_decays_to_zero():
    from sd_explorer.core.fashion.lr_schedule import lr_at

    assert [lr_at(s, 10, 1.0, warmup=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(9, 10, 1.0, warmup=4) == 1.0  # constant after the warm-up
    cosine = [lr_at(s, 10, 1.0, warmup=2, schedule="cosine") for s in range(10)]
    assert cosine[:3] == [0.5, 1.0, 1.0] and cosine[2] > cosine[5] > cosine[9] > 0
    assert lr_at(10, 10, 1.0, warmup=2, schedule="cosine") == pytest.approx(0.0, abs=1e-12)
    assert cosine == sorted(cosine[:2]) + sorted(cosine[2:], reverse=True)


def test_a_scheduled_run_steps_along_the_curve_and_resumes_on_it(data, tmp_path, monkeypatch):
    from sd_explorer.core.fashion import lr_schedule, trainer as trainer_module

    seen: list[float] = []
    real = lr_schedule.set_lr

    def spy(optimizer, value):
        real(optimizer, value)
        seen.append(float(optimizer.param_groups[0]["lr"]))

    monkeypatch.setattr(trainer_module, "set_lr", spy)
    sched = dict(lr=1e-3, lr_warmup_steps=2, lr_schedule="cosine", ema_decay=0.9, ema_warmup=True)
    straight = Trainer(cfg(epochs=2, **sched), data, device="cpu").run()
    want = [lr_schedule.lr_at(s, 6, 1e-3, 2, "cosine") for s in range(6)]
    assert seen == pytest.approx(want, rel=1e-6) and seen[0] == pytest.approx(5e-4)
    cancel = threading.Event()
    stopped = Trainer(cfg(epochs=2, out_dir=str(tmp_path), **sched), data, device="cpu",
                      on_step=lambda s: cancel.set() if s.step == 4 else None)
    with pytest.raises(Cancelled):
        stopped.run(cancel=cancel)
    seen.clear()
    resumed = Trainer(resume_config(stopped.last_checkpoint), data, device="cpu").run()
    assert seen == pytest.approx(want[4:], rel=1e-6)  # the resumed run continues the same curve ...
    assert resumed.losses == pytest.approx(straight.losses, abs=0)  # ... and the same run
    a, b = weights(straight.ema_model), weights(resumed.ema_model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ema_warmup_forgets_the_random_start_sooner():
    from sd_explorer.core.ema import EMA

    module = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        module.weight.zero_()
    plain, warm = EMA(module, 0.99), EMA(module, 0.99, warmup=True)
    with torch.no_grad():
        module.weight.fill_(1.0)
    for step in range(5):
        plain.update(step)
        warm.update(step)
    # 0.99 alone keeps ~95 % of the zero start; the warm-up's decays 0.1, 0.18, 0.25, ... keep ~2 %
    assert float(plain.shadow[0].mean()) == pytest.approx(1 - 0.99 ** 5, rel=1e-5)
    assert float(warm.shadow[0].mean()) > 0.95


def test_bad_schedule_fields_are_one_line_errors():
    with pytest.raises(UserError, match="lr_schedule must be one of constant, cosine"):
        cfg(lr_schedule="linear").validate()
    with pytest.raises(UserError, match="lr_warmup_steps must be a whole number"):
        cfg(lr_warmup_steps=-1).validate()


@pytest.mark.gpu
def test_scheduled_lr_under_the_step_graph_trains_like_eager():
    """The whole-step graph reads the learning rate from a tensor filled before each replay: warm-up and
    cosine decay train exactly as the eager step does (a baked-in number would not)."""
    synthetic = synthetic_data()
    runs = {}
    for graph in (True, False):
        c = TrainConfig(epochs=2, batch_size=128, seed=3, cuda_graph=graph, cudnn_benchmark=False, lr=1e-3,
                        lr_warmup_steps=5, lr_schedule="cosine")
        trainer = Trainer(c, synthetic, device="cuda")
        runs[graph] = trainer.run()
        assert trainer._graph == graph
    a, b = torch.tensor(runs[True].losses), torch.tensor(runs[False].losses)
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), (a - b).abs().max()
    wa, wb = weights(runs[True].model), weights(runs[False].model)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-3
