"""The chapter's class-conditional DDPM training loop, made fast, pausable and resumable.

The whole dataset lives on the device as one uint8 tensor; each step indexes a batch, applies the
chapter's preprocessing on the device, noises it at random timesteps and regresses the noise (MSE).
Hugging Face Accelerate handles devices, bf16 autocast and multi-GPU (``accelerate launch``).
All randomness after model initialisation comes from one generator on the device (saved in
checkpoints) plus a per-epoch permutation derived from ``(seed, epoch)``, so a resumed run continues
exactly as the uninterrupted run would have.

Several processes (``accelerate launch --multi_gpu --num_processes N -m sd_explorer.core fashion train ...``; on
a machine without GPUs the same command runs N CPU processes over gloo) train the same run as one
process at the same global ``batch_size``: every rank draws the whole global batch's flips, noise
and timesteps from the same generator and keeps its slice ``[rank::N]``; each rank's loss is
weighted by its share of the global batch, so DDP's gradient average is the global batch's mean
gradient. Step losses are averaged over ranks at every logging point and epoch end, checkpoints are
written by the main process only (and resume in one process). Test hook: when the environment
variable ``SD_EXPLORER_FASHION_RANK_DIGEST`` names a folder, every rank writes
``params-rank<r>.sha256`` (SHA-256 of its float32 parameters) there at the end of ``run``.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import Cancelled, UserError
from .. import atomic
from .checkpoint import load_checkpoint, save_checkpoint
from .data import FashionData, preprocess
from .graphstep import GraphedTrainStep
from ..devices import pick_device
from .model import ModelConfig, alphas_cumprod, build_unet


@dataclass
class TrainConfig:
    """The chapter's recipe by default: 25 epochs, batch 256, AdamW(3e-4, eps 1e-5)."""

    epochs: int = 25
    batch_size: int = 256
    lr: float = 3e-4
    eps: float = 1e-5
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str | None = None
    out_dir: str | None = None
    checkpoint_every_epochs: int = 1
    log_every: int = 10
    log_seconds: float = 0.0  # also report when this long has passed since the last report (0 = off)
    resume: str | None = None
    channels_last: bool = True
    mixed_precision: str = "auto"  # "auto" = bf16 on CUDA, none on CPU; or "no" / "bf16"
    compile: bool = False  # torch.compile the UNet (on CUDA it is then captured in the step's graph)
    init_weights: str | None = None  # start from these weights (a .safetensors file), e.g. to train on
    ema_decay: float = 0.0  # > 0: also keep a moving average of the weights (core.ema), e.g. 0.999
    cuda_graph: bool = True  # capture the whole step on single-process CUDA runs
    cudnn_benchmark: bool = True

    def validate(self) -> None:
        """Raise ``UserError`` for settings that cannot train (types: ``config_from_dict``)."""
        from ..inputs import check_seed, check_whole

        check_whole(self.epochs, "epochs", 1, 100_000, 25)
        check_whole(self.batch_size, "batch size", 1, 65_536, 256)
        check_seed(self.seed)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise UserError(f"learning rate must be a number above 0 and at most 1, not {self.lr}: e.g. 3e-4")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and 0 < self.eps < 1):
            raise UserError(f"eps must be a small positive number, not {self.eps}: e.g. 1e-5")
        self.model.validate()
        if self.log_every < 1 or self.checkpoint_every_epochs < 1:
            raise UserError("log_every and checkpoint_every_epochs must be at least 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema_decay must be from 0 (off) to below 1, e.g. 0.999, not {self.ema_decay}")
        if not 0 <= self.log_seconds < math.inf:
            raise UserError(f"log_seconds must be 0 or more, not {self.log_seconds}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise UserError(f"mixed precision must be auto, no or bf16, not {self.mixed_precision!r}")


@dataclass
class StepStats:
    """Progress every ``log_every`` steps, after ``log_seconds`` without one, and on each epoch's last step."""

    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    images_per_s: float
    eta_s: float
    device: str


@dataclass
class EpochStats:
    """Summary at the end of each epoch."""

    epoch: int
    epochs: int
    mean_loss: float
    elapsed_s: float
    images_per_s: float
    checkpoint: str | None


@dataclass
class TrainResult:
    """What a finished run did."""

    losses: list[float]
    epoch_losses: list[float]
    final_loss: float
    elapsed_s: float
    images_per_s: float
    step: int
    checkpoint: str | None
    model: torch.nn.Module | None = None
    ema_model: torch.nn.Module | None = None  #: the weights' moving average, when ``ema_decay`` > 0


class Trainer:
    """Train a class-conditional UNet on Fashion-MNIST; drive it from any thread via ``run``."""

    def __init__(
        self,
        config: TrainConfig,
        data: FashionData,
        device: str | torch.device | None = None,
        on_step: Callable[[StepStats], None] | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> None:
        config.validate()
        if len(data) == 0:
            raise UserError("The training data is empty; pass a Fashion-MNIST folder with images")
        self.config = config
        self.data = data
        self.device = pick_device(device)
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.last_checkpoint: str | None = None
        self.model: torch.nn.Module | None = None
        self.ema = None  #: core.ema.EMA when ``ema_decay`` > 0

    # ---- setup ---------------------------------------------------------------------------------
    def _setup(self):
        from accelerate import Accelerator

        cfg = self.config
        cuda = self.device.type == "cuda"
        mp = cfg.mixed_precision if cfg.mixed_precision != "auto" else ("bf16" if cuda else "no")
        try:
            acc = Accelerator(cpu=not cuda, mixed_precision=mp)
        except ValueError:
            # An earlier run in this process chose another device/precision (e.g. CPU, then GPU).
            # Outside a distributed launch the shared state can be reset safely.
            from accelerate.state import AcceleratorState, PartialState

            if PartialState().num_processes > 1:
                raise
            AcceleratorState._reset_state(True)
            acc = Accelerator(cpu=not cuda, mixed_precision=mp)
        dev = acc.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            unet = build_unet(cfg.model)
        if cfg.init_weights and not cfg.resume:
            from .model import load_weights

            start = load_weights(cfg.init_weights, device="cpu", dtype=torch.float32)
            if start.config.to_json() != cfg.model.to_json():
                raise UserError(f"{cfg.init_weights} holds another model configuration than this run's")
            unet.load_state_dict(start.unet.state_dict())
        unet = unet.to(dev)
        if cuda and cfg.channels_last:
            unet = unet.to(memory_format=torch.channels_last)
        if cuda and cfg.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self._graph = cuda and cfg.cuda_graph and acc.num_processes == 1  # with compile: compiled, then captured
        opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, eps=cfg.eps, fused=cuda, capturable=self._graph)
        # the same stream on every rank: each draws the global batch's randomness and keeps its slice
        gen = torch.Generator(device=dev).manual_seed(cfg.seed * 7919 % 2**64)
        state = {"step": 0, "epoch": 0, "step_in_epoch": 0, "losses": [], "elapsed_s": 0.0}
        if cfg.resume:
            state = load_checkpoint(cfg.resume, unet, opt)
            if "gen" in state["rng"]:
                gen.set_state(state["rng"]["gen"])
            if state.get("num_images") != len(self.data) and state.get("step_in_epoch", 0):
                raise UserError("The checkpoint was stopped mid-epoch on other data; resume with the same --data")
        if cfg.ema_decay > 0:
            from ..ema import EMA

            self.ema = EMA(unet, cfg.ema_decay)  # from the initial (or resumed) weights, read in place
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
        model, opt = acc.prepare(unet, opt)
        if cfg.compile:  # after prepare: Accelerate re-binds forward for autocast, which a compiled module refuses
            model = torch.compile(model)
        return acc, model, opt, gen, state

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None, pause: threading.Event | None = None) -> TrainResult:
        """Train until ``config.epochs`` (counting epochs already done when resuming)."""
        cfg = self.config
        acc, model, opt, gen, state = self._setup()
        dev = acc.device
        self.model = acc.unwrap_model(model, keep_fp32_wrapper=False, keep_torch_compile=False)
        n = len(self.data)
        images = self.data.images.to(dev)
        labels = self.data.labels.to(dev)
        abar = alphas_cumprod(cfg.model).to(dev)
        sqrt_ab, sqrt_1m = abar.sqrt(), (1.0 - abar).sqrt()
        T = cfg.model.num_train_timesteps
        world, rank = acc.num_processes, acc.process_index
        spe = math.ceil(n / cfg.batch_size)
        check_split(n, cfg.batch_size, world)
        total = cfg.epochs * spe
        step, epoch, s0 = int(state["step"]), int(state["epoch"]), int(state["step_in_epoch"])
        if s0 >= spe:
            epoch, s0 = epoch + 1, 0
        prior_losses = list(state.get("losses", []))
        step_losses = torch.zeros(max(total - step, 1), device=dev)
        base_step = step
        channels_last = dev.type == "cuda" and cfg.channels_last
        t_start, paused_s, last_log_t, last_log_step = time.perf_counter(), 0.0, None, step
        images_done = 0
        reduced_to = step  # step losses before this index are already averaged over the ranks
        epoch_losses: list[float] = list(state.get("epoch_losses", []))
        ckpt: str | None = None

        def elapsed() -> float:
            return time.perf_counter() - t_start - paused_s

        def snapshot(ep: int, s_in: int) -> dict:
            done = step_losses[: step - base_step].tolist()
            return {
                "step": step, "epoch": ep, "step_in_epoch": s_in, "epochs": cfg.epochs,
                "batch_size": cfg.batch_size, "num_images": n, "seed": cfg.seed,
                "losses": prior_losses + done, "epoch_losses": epoch_losses,
                "elapsed_s": float(state.get("elapsed_s", 0.0)) + elapsed(), "train_config": _config_dict(cfg),
            }

        def write_checkpoint(ep: int, s_in: int) -> str | None:
            if not cfg.out_dir or not acc.is_main_process:
                return None
            path = save_checkpoint(
                cfg.out_dir, acc.unwrap_model(model, keep_fp32_wrapper=False, keep_torch_compile=False), opt, snapshot(ep, s_in),
                cfg.model.to_json(), {"gen": gen.get_state()},
                self.ema.state_dict() if self.ema is not None else None,
            )
            self.last_checkpoint = str(path)
            return str(path)

        model.train()
        use_bf16 = acc.mixed_precision == "bf16"

        def train_step(noisy: torch.Tensor, t: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                       weight: float = 1.0) -> torch.Tensor:
            # cache_enabled=False: autocast's weight-cast cache must not outlive a graph capture
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16, cache_enabled=False):
                pred = model(noisy, t, class_labels=y).sample
            loss = F.mse_loss(pred.float(), noise)
            if weight != 1.0:  # this rank's share of an unevenly split global batch
                loss = loss * weight
            acc.backward(loss)
            opt.step()
            return loss.detach()

        def zero_grad() -> None:
            opt.zero_grad(set_to_none=True)

        graphed = GraphedTrainStep(train_step, zero_grad) if self._graph else None
        last_log_t = time.perf_counter()
        for ep in range(epoch, cfg.epochs):
            perm_gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + ep) % 2**64)
            perm = torch.randperm(n, generator=perm_gen).to(dev)
            for s in range(s0, spe):
                if pause is not None and pause.is_set():
                    t_pause = time.perf_counter()
                    while pause.is_set() and not (cancel is not None and cancel.is_set()):
                        time.sleep(0.05)
                    paused_s += time.perf_counter() - t_pause
                    last_log_t += time.perf_counter() - t_pause
                if cancel is not None and cancel.is_set():
                    write_checkpoint(ep, s)
                    raise Cancelled("training cancelled")
                idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                x = preprocess(images[idx], generator=gen)
                noise = torch.randn(x.shape, generator=gen, device=dev)
                t = torch.randint(0, T, (x.shape[0],), generator=gen, device=dev)
                weight, global_n = 1.0, idx.shape[0]
                if world > 1:  # this rank's slice of the global batch
                    idx, x, noise, t = idx[rank::world], x[rank::world], noise[rank::world], t[rank::world]
                    weight = x.shape[0] * world / global_n
                noisy = sqrt_ab[t].view(-1, 1, 1, 1) * x + sqrt_1m[t].view(-1, 1, 1, 1) * noise
                if channels_last:
                    noisy = noisy.contiguous(memory_format=torch.channels_last)
                batch = (noisy, t, labels[idx], noise)
                if graphed is not None and graphed.matches(batch):
                    loss = graphed(*batch)
                else:
                    zero_grad()
                    loss = train_step(*batch, weight)
                step_losses[step - base_step] = loss
                if self.ema is not None:
                    self.ema.update()
                step += 1
                images_done += global_n
                last_in_epoch = s == spe - 1
                if world > 1 and (step % cfg.log_every == 0 or last_in_epoch):  # same steps on every rank
                    window = step_losses[reduced_to - base_step: step - base_step]
                    step_losses[reduced_to - base_step: step - base_step] = acc.reduce(window.clone(), "mean")
                    reduced_to = step
                now = time.perf_counter()
                overdue = world == 1 and cfg.log_seconds > 0 and now - last_log_t >= cfg.log_seconds
                if self.on_step is not None and (step % cfg.log_every == 0 or last_in_epoch or overdue):
                    window = step_losses[last_log_step - base_step: step - base_step].mean().item()
                    rate = (step - last_log_step) * cfg.batch_size / max(now - last_log_t, 1e-9)
                    per_step = elapsed() / max(step - base_step, 1)
                    try:
                        self.on_step(StepStats(step, total, ep, cfg.epochs, window, rate,
                                               per_step * (total - step), str(dev)))
                    except Cancelled:  # a callback that checks the cancel event: still resumable
                        write_checkpoint(ep, s + 1)
                        raise
                    last_log_t, last_log_step = now, step
            s0 = 0
            first = (ep * spe) - base_step
            ep_vals = step_losses[max(first, 0): step - base_step].tolist()
            if first < 0:  # resumed mid-epoch: the epoch's earlier steps are in the checkpoint
                ep_vals = prior_losses[ep * spe:] + ep_vals
            ep_loss = sum(ep_vals) / len(ep_vals) if ep_vals else float("nan")
            epoch_losses.append(ep_loss)
            if (ep + 1) % cfg.checkpoint_every_epochs == 0 or ep + 1 == cfg.epochs:
                ckpt = write_checkpoint(ep, spe)
            if self.on_epoch is not None:
                wrote = (ep + 1) % cfg.checkpoint_every_epochs == 0
                try:
                    self.on_epoch(EpochStats(ep, cfg.epochs, ep_loss, elapsed(),
                                             images_done / max(elapsed(), 1e-9), ckpt if wrote else None))
                except Cancelled:
                    if not (wrote or ep + 1 == cfg.epochs):
                        write_checkpoint(ep, spe)
                    raise
        acc.wait_for_everyone()
        _write_rank_digest(self.model, rank)
        losses = prior_losses + step_losses[: step - base_step].tolist()
        wall = elapsed()
        return TrainResult(
            losses=losses, epoch_losses=epoch_losses,
            final_loss=epoch_losses[-1] if epoch_losses else float("nan"),
            elapsed_s=wall, images_per_s=images_done / max(wall, 1e-9), step=step,
            checkpoint=ckpt, model=acc.unwrap_model(model, keep_fp32_wrapper=False, keep_torch_compile=False),
            ema_model=self.ema.averaged() if self.ema is not None else None,
        )


def check_split(n: int, batch_size: int, world: int) -> None:
    """Raise ``UserError`` if some batch would leave one of ``world`` processes without images."""
    if world > 1 and (batch_size < world or 0 < n % batch_size < world):
        raise UserError(f"With {world} processes every batch needs at least {world} images; use a batch "
                        f"size and image count (--limit) whose last batch has at least {world}")


def _write_rank_digest(model: torch.nn.Module, rank: int) -> None:
    """Test hook (see the module docstring): this rank's parameter hash, to prove ranks stay in sync."""
    folder = os.environ.get("SD_EXPLORER_FASHION_RANK_DIGEST")
    if not folder:
        return
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    atomic.write_bytes(Path(folder) / f"params-rank{rank}.sha256", (digest.hexdigest() + "\n").encode())


def _config_dict(cfg: TrainConfig) -> dict:
    out = asdict(cfg)
    out["model"] = asdict(cfg.model)
    return out


def resume_config(path: str | Path, **overrides) -> TrainConfig:
    """The ``TrainConfig`` a checkpoint was written with, with ``resume`` set and ``overrides`` applied."""
    state = load_checkpoint(path)
    raw = dict(state.get("train_config") or {})
    model_raw = raw.pop("model", None)
    where = f"{Path(path).name}'s training config"
    model = ModelConfig.from_json(state["model_config_json"], where) if state.get("model_config_json") else (
        ModelConfig.from_dict(model_raw, where) if model_raw else ModelConfig())
    known = set(TrainConfig.__dataclass_fields__)
    cfg = config_from_dict({k: v for k, v in raw.items() if k in known and k != "model"}, where)
    cfg.model = model
    cfg.resume = str(path)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def config_from_dict(raw, where: str) -> TrainConfig:
    """A ``TrainConfig`` from a JSON object (``fashion train --config``, a checkpoint's ``train_config``):
    every field's type checked (``core.schema``), ``model`` as ``ModelConfig.from_dict``, then ``validate``."""
    from ..schema import from_dict

    if isinstance(raw, dict) and "model" in raw:
        raw = dict(raw)
        model = raw.pop("model")
        cfg = from_dict(TrainConfig, raw, where)
        cfg.model = ModelConfig.from_dict(model, f"{where}: model")
    else:
        cfg = from_dict(TrainConfig, raw, where)
    cfg.validate()
    return cfg
