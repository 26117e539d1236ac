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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import atomic
from ..devices import pick_device
from ..errors import Cancelled, UserError
from ..finite import check_loss
from .checkpoint import load_checkpoint, save_checkpoint
from .data import FashionData, preprocess
from .graphstep import GraphedTrainStep
from .lr_schedule import lr_at, set_lr
from .model import alphas_cumprod, build_unet, load_weights
from .train_config import TrainConfig
from .train_state import TrainState
from ..ema import EMA


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
    """Train a class-conditional UNet on Fashion-MNIST; drive it from any thread via ``run``.

    ``run`` is the loop (minGPT's trainer is its model): per epoch a permutation, per step ``_batch``
    then ``_train_step``, then ``_log``; at each epoch's end ``_end_epoch``; callbacks (``on_step``,
    ``on_epoch``) are the only way out, and a ``Cancelled`` from one still leaves a resumable checkpoint.
    """

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

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the last batch may be partial)."""
        return math.ceil(len(self.data) / self.config.batch_size)

    # ---- setup ---------------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator

        cfg = self.config
        cuda = self.device.type == "cuda"
        mp = cfg.mixed_precision if cfg.mixed_precision != "auto" else ("bf16" if cuda else "no")
        try:
            return Accelerator(cpu=not cuda, mixed_precision=mp)
        except ValueError:
            # An earlier run in this process chose another device/precision (e.g. CPU, then GPU).
            # Outside a distributed launch the shared state can be reset safely.
            from accelerate.state import AcceleratorState, PartialState

            if PartialState().num_processes > 1:
                raise
            AcceleratorState._reset_state(True)
            return Accelerator(cpu=not cuda, mixed_precision=mp)

    def _setup(self) -> None:
        """The accelerator, the model, its optimizer and the generator; a resume's state restored into them."""
        cfg = self.config
        cuda = self.device.type == "cuda"
        self.acc = acc = self._accelerator()
        dev = acc.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            unet = build_unet(cfg.model)
        if cfg.init_weights and not cfg.resume:
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
        # a scheduled learning rate changes every step: under the whole-step graph it is a device tensor the
        # graph reads (filled in place before each replay, core.fashion.lr_schedule.set_lr)
        self.scheduled = cfg.lr_warmup_steps > 0 or cfg.lr_schedule != "constant"
        lr = torch.tensor(cfg.lr, device=dev) if self.scheduled and self._graph else cfg.lr
        opt = torch.optim.AdamW(unet.parameters(), lr=lr, eps=cfg.eps, fused=cuda, capturable=self._graph)
        # the same stream on every rank: each draws the global batch's randomness and keeps its slice
        self.gen = torch.Generator(device=dev).manual_seed(cfg.seed * 7919 % 2**64)
        self.state, ema_state = TrainState(), None
        if cfg.resume:
            saved = load_checkpoint(cfg.resume, unet, opt)
            if "gen" in saved["rng"]:
                try:
                    self.gen.set_state(saved["rng"]["gen"])
                except (RuntimeError, TypeError, ValueError):
                    raise UserError(f"{cfg.resume}: its random state is for another device than {dev.type}; "
                                    "resume on the device that wrote it") from None
            self.state, ema_state = TrainState.from_checkpoint(saved, len(self.data)), saved.get("ema")
            if isinstance(lr, torch.Tensor):  # loading put the saved number back in: the graph must read a tensor
                for group in opt.param_groups:
                    group["lr"] = torch.tensor(float(group["lr"]), device=dev)
        if cfg.ema_decay > 0:
            self.ema = EMA(unet, cfg.ema_decay, warmup=cfg.ema_warmup)  # from the initial (or resumed) weights
            if ema_state:
                self.ema.load_state_dict(ema_state)
        model, self.opt = acc.prepare(unet, opt)
        if cfg.compile:  # after prepare: Accelerate re-binds forward for autocast, which a compiled module refuses
            model = torch.compile(model)
        self.wrapped = model
        self.model = self._unwrapped()

    def _unwrapped(self) -> torch.nn.Module:
        return self.acc.unwrap_model(self.wrapped, keep_fp32_wrapper=False, keep_torch_compile=False)

    def _prepare_data(self) -> None:
        """The data and the noise schedule on the device; the run's counters from its state."""
        cfg, dev = self.config, self.acc.device
        self.images, self.labels = self.data.images.to(dev), self.data.labels.to(dev)
        abar = alphas_cumprod(cfg.model).to(dev)
        self.sqrt_ab, self.sqrt_1m = abar.sqrt(), (1.0 - abar).sqrt()
        self.world, self.rank = self.acc.num_processes, self.acc.process_index
        check_split(len(self.data), cfg.batch_size, self.world)
        self.total = cfg.epochs * self.steps_per_epoch
        self.step = self.base_step = self.state.step
        self.step_losses = torch.zeros(max(self.total - self.step, 1), device=dev)
        self.reduced_to = self.step  # step losses before this index are already averaged over the ranks
        self.epoch_losses: list[float] = list(self.state.epoch_losses)
        self.images_done, self.paused_s = 0, 0.0
        self.t_start = time.perf_counter()

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None, pause: threading.Event | None = None) -> TrainResult:
        """Train until ``config.epochs`` (counting epochs already done when resuming)."""
        cfg, spe = self.config, self.steps_per_epoch
        self._setup()
        self._prepare_data()
        epoch, first = self.state.epoch, self.state.step_in_epoch
        if first >= spe:  # the checkpoint closed its epoch
            epoch, first = epoch + 1, 0
        self.wrapped.train()
        self.graphed = GraphedTrainStep(self._train_step, self._zero_grad) if self._graph else None
        self.last_log_t, self.last_log_step, self.checkpoint = time.perf_counter(), self.step, None
        for ep in range(epoch, cfg.epochs):
            order = torch.randperm(len(self.data), generator=self._permutation_generator(ep)).to(self.acc.device)
            for s in range(first, spe):
                self._wait_while_paused(pause, cancel)
                if cancel is not None and cancel.is_set():
                    self._save(ep, s)
                    raise Cancelled("training cancelled")
                self._step(*self._batch(order, s))
                self._log(ep, s)
            first = 0
            self._end_epoch(ep)
        return self._finish()

    def _permutation_generator(self, epoch: int) -> torch.Generator:
        """The epoch's shuffle, from ``(seed, epoch)`` alone: a resumed run shuffles as the uninterrupted one."""
        return torch.Generator().manual_seed((self.config.seed * 1_000_003 + epoch) % 2**64)

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t_start - self.paused_s

    def _wait_while_paused(self, pause: threading.Event | None, cancel: threading.Event | None) -> None:
        if pause is None or not pause.is_set():
            return
        t_pause = time.perf_counter()
        while pause.is_set() and not (cancel is not None and cancel.is_set()):
            time.sleep(0.05)
        self.paused_s += time.perf_counter() - t_pause
        self.last_log_t += time.perf_counter() - t_pause

    def _batch(self, order: torch.Tensor, s: int) -> tuple[tuple[torch.Tensor, ...], float, int]:
        """Step ``s``'s batch, noised: ``((noisy, t, labels, noise), this rank's loss weight, global batch size)``.

        Every rank draws the whole global batch's flips, noise and timesteps and keeps its slice."""
        cfg, dev, gen = self.config, self.acc.device, self.gen
        idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        x = preprocess(self.images[idx], generator=gen)
        noise = torch.randn(x.shape, generator=gen, device=dev)
        t = torch.randint(0, cfg.model.num_train_timesteps, (x.shape[0],), generator=gen, device=dev)
        weight, global_n = 1.0, idx.shape[0]
        if self.world > 1:  # this rank's slice of the global batch
            w, r = self.world, self.rank
            idx, x, noise, t = idx[r::w], x[r::w], noise[r::w], t[r::w]
            weight = x.shape[0] * w / global_n
        noisy = self.sqrt_ab[t].view(-1, 1, 1, 1) * x + self.sqrt_1m[t].view(-1, 1, 1, 1) * noise
        if dev.type == "cuda" and cfg.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return (noisy, t, self.labels[idx], noise), weight, global_n

    def _zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def _train_step(self, noisy: torch.Tensor, t: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                    weight: float = 1.0) -> torch.Tensor:
        """Forward, MSE against the noise, backward, optimizer step (what the CUDA graph captures)."""
        # cache_enabled=False: autocast's weight-cast cache must not outlive a graph capture
        with torch.autocast(self.acc.device.type, dtype=torch.bfloat16, enabled=self.acc.mixed_precision == "bf16",
                            cache_enabled=False):
            pred = self.wrapped(noisy, t, class_labels=y).sample
        loss = F.mse_loss(pred.float(), noise)
        if weight != 1.0:  # this rank's share of an unevenly split global batch
            loss = loss * weight
        self.acc.backward(loss)
        self.opt.step()
        return loss.detach()

    def _step(self, batch: tuple[torch.Tensor, ...], weight: float, global_n: int) -> None:
        """One optimizer step on ``batch`` (replayed from the CUDA graph when it fits), its loss kept."""
        cfg = self.config
        if self.scheduled:
            set_lr(self.opt, lr_at(self.step, self.total, cfg.lr, cfg.lr_warmup_steps, cfg.lr_schedule))
        if self.graphed is not None and self.graphed.matches(batch):
            loss = self.graphed(*batch)
        else:
            self._zero_grad()
            loss = self._train_step(*batch, weight)
        self.step_losses[self.step - self.base_step] = loss
        if self.ema is not None:
            self.ema.update(self.step)  # the step counts only with ema_warmup
        self.step += 1
        self.images_done += global_n

    def _log(self, ep: int, s: int) -> None:
        """Average the losses over the ranks where due; ``on_step`` every ``log_every`` steps, after
        ``log_seconds`` without a report, and at the epoch's last step."""
        cfg, step, base = self.config, self.step, self.base_step
        last_in_epoch = s == self.steps_per_epoch - 1
        if self.world > 1 and (step % cfg.log_every == 0 or last_in_epoch):  # same steps on every rank
            window = self.step_losses[self.reduced_to - base: step - base]
            self.step_losses[self.reduced_to - base: step - base] = self.acc.reduce(window.clone(), "mean")
            self.reduced_to = step
        now = time.perf_counter()
        overdue = self.world == 1 and cfg.log_seconds > 0 and now - self.last_log_t >= cfg.log_seconds
        if self.on_step is None or not (step % cfg.log_every == 0 or last_in_epoch or overdue):
            return
        window = self.step_losses[self.last_log_step - base: step - base].mean().item()
        if not math.isfinite(window):  # diverged: stop, keep the last good checkpoint
            check_loss([window], step, self.last_checkpoint or cfg.resume)
        rate = (step - self.last_log_step) * cfg.batch_size / max(now - self.last_log_t, 1e-9)
        per_step = self._elapsed() / max(step - base, 1)
        try:
            self.on_step(StepStats(step, self.total, ep, cfg.epochs, window, rate, per_step * (self.total - step),
                                   str(self.acc.device)))
        except Cancelled:  # a callback that checks the cancel event: still resumable
            self._save(ep, s + 1)
            raise
        self.last_log_t, self.last_log_step = now, step

    def _end_epoch(self, ep: int) -> None:
        """The epoch's mean loss, its checkpoint when due, and ``on_epoch``."""
        cfg, spe = self.config, self.steps_per_epoch
        first = ep * spe - self.base_step
        values = self.step_losses[max(first, 0): self.step - self.base_step].tolist()
        if first < 0:  # resumed mid-epoch: the epoch's earlier steps are in the checkpoint
            values = list(self.state.losses[ep * spe:]) + values
        loss = sum(values) / len(values) if values else float("nan")
        if values:
            check_loss(values, self.step, self.last_checkpoint or cfg.resume)
        self.epoch_losses.append(loss)
        last = ep + 1 == cfg.epochs
        wrote = (ep + 1) % cfg.checkpoint_every_epochs == 0
        if wrote or last:
            self.checkpoint = self._save(ep, spe)
        if self.on_epoch is None:
            return
        try:
            self.on_epoch(EpochStats(ep, cfg.epochs, loss, self._elapsed(),
                                     self.images_done / max(self._elapsed(), 1e-9), self.checkpoint if wrote else None))
        except Cancelled:
            if not (wrote or last):
                self._save(ep, spe)
            raise

    def _state_now(self, ep: int, s_in: int) -> TrainState:
        done = self.step_losses[: self.step - self.base_step].tolist()
        return TrainState(self.step, ep, s_in, self.state.losses + tuple(done), tuple(self.epoch_losses),
                          self.state.elapsed_s + self._elapsed(), len(self.data))

    def _save(self, ep: int, s_in: int) -> str | None:
        """A checkpoint at step ``s_in`` of epoch ``ep`` (the main process, with an ``out_dir``, only)."""
        cfg = self.config
        if not cfg.out_dir or not self.acc.is_main_process:
            return None
        check_loss(self.step_losses[: self.step - self.base_step], self.step,  # never a NaN checkpoint
                   self.last_checkpoint or cfg.resume)
        path = save_checkpoint(cfg.out_dir, self._unwrapped(), self.opt, self._state_now(ep, s_in).to_json(cfg),
                               cfg.model.to_json(), {"gen": self.gen.get_state()},
                               self.ema.state_dict() if self.ema is not None else None)
        self.last_checkpoint = str(path)
        return str(path)

    def _finish(self) -> TrainResult:
        self.acc.wait_for_everyone()
        _write_rank_digest(self.model, self.rank)
        losses = list(self.state.losses) + self.step_losses[: self.step - self.base_step].tolist()
        wall = self._elapsed()
        return TrainResult(
            losses=losses, epoch_losses=self.epoch_losses,
            final_loss=self.epoch_losses[-1] if self.epoch_losses else float("nan"),
            elapsed_s=wall, images_per_s=self.images_done / max(wall, 1e-9), step=self.step,
            checkpoint=self.checkpoint, model=self._unwrapped(),
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
