"""Class-conditional sampling: the chapter's 1000-step DDPM loop and DDIM with fewer steps.

Both samplers are written as one pure-tensor update per step, with the schedule's coefficients in
small tables on the device::

    eps = unet(x, t, class_labels)
    x0  = clamp((x - sqrt(1 - abar_t) * eps) / sqrt(abar_t), -1, 1)
    x   = a * x0 + b * x + d * eps + c * z

DDPM (``DDPMScheduler.step``, fixed_small variance; DDPM paper eq. 7): ``a, b`` from the posterior mean,
``d = 0``, ``c = sigma_t``. DDIM (``DDIMScheduler.step`` with trailing timesteps and clip_sample, eta 1 by
default; DDIM paper eqs. 12 and 16): ``a = sqrt(abar_prev)``, ``b = 0``, ``d = sqrt(1 - abar_prev - sigma_t^2)`` on
the eps of the clipped x0, ``c = sigma_t`` (0 with eta 0). Because the step indexes its tables with a step counter that
lives on the device, the whole step (UNet + update + counter) is captured once as a CUDA graph and
replayed; the fresh noise ``z`` is drawn outside the graph from the same generator as in eager mode,
so graph and eager results are identical. ``compile=`` (a ``torch.compile`` mode) fuses the UNet's
~600 small kernels before the capture (opt-in: results then differ from eager by rounding).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import Cancelled, UserError
from ..cuda_graphs import capture, heal_rng_after_failed_capture, warm_up
from ..fast import ieee_fp32
from ..loss_guidance import color_loss, pull
from ..inputs import check_compile_mode
from .model import FashionDDPM, ModelConfig, alphas_cumprod, build_scheduler
from ..finite import bad_tensor, check_color_scale, check_result, is_finite


@dataclass
class StepTables:
    """Per-step coefficients (float32) and timesteps (int64) of one sampler."""

    timesteps: torch.Tensor
    sqrt_1m_abar: torch.Tensor
    sqrt_abar: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    d: torch.Tensor
    c: torch.Tensor
    kind: str

    def to(self, device: torch.device) -> "StepTables":
        names = ("timesteps", "sqrt_1m_abar", "sqrt_abar", "a", "b", "d", "c")
        fields = {k: getattr(self, k).to(device) for k in names}
        return StepTables(kind=self.kind, **fields)

    def __len__(self) -> int:
        return len(self.timesteps)


@dataclass
class SampleStep:
    """What a sampling callback sees after each step (CPU copies, values in [-1, 1])."""

    index: int
    total: int
    timestep: int
    x: torch.Tensor
    x0: torch.Tensor


def make_tables(cfg: ModelConfig, steps: int, eta: float = 1.0) -> StepTables:
    """DDPM tables for ``steps == num_train_timesteps``, DDIM tables (``eta``: see below) for fewer steps."""
    T = cfg.num_train_timesteps
    if not 1 <= steps <= T:
        raise UserError(f"steps must be between 1 and {T}, not {steps}")
    abar = alphas_cumprod(cfg)
    one = torch.tensor(1.0)
    if steps == T:
        # DDPM (Ho et al. 2020), eq. 7: the posterior q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I) with
        #   mu~_t   = sqrt(abar_{t-1}) beta_t / (1 - abar_t) * x_0  +  sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) * x_t
        #   beta~_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t       ("fixed_small" variance, sigma_t^2)
        # so a = the x_0 coefficient, b = the x_t coefficient, c = sigma_t (no noise at the last step), d = 0.
        ts = torch.arange(T - 1, -1, -1)
        ab_t = abar[ts]
        ab_prev = torch.where(ts > 0, abar[(ts - 1).clamp(min=0)], one)
        beta_t, beta_prev = 1 - ab_t, 1 - ab_prev
        cur_alpha = ab_t / ab_prev
        cur_beta = 1 - cur_alpha
        a = ab_prev ** 0.5 * cur_beta / beta_t  # eq. 7: sqrt(abar_{t-1}) beta_t / (1 - abar_t)
        b = cur_alpha ** 0.5 * beta_prev / beta_t  # eq. 7: sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t)
        var = torch.clamp(beta_prev / beta_t * cur_beta, min=1e-20)  # eq. 7: beta~_t
        c = torch.where(ts > 0, var ** 0.5, torch.zeros(()))
        d = torch.zeros(T)
        kind = "ddpm"
    else:
        # DDIM (Song et al. 2021), eq. 12, with sigma_t from eq. 16:
        #   x_{t-1} = sqrt(abar_{t-1}) * x0_pred  +  sqrt(1 - abar_{t-1} - sigma_t^2) * eps  +  sigma_t * z
        #   sigma_t = eta * sqrt((1 - abar_{t-1}) / (1 - abar_t)) * sqrt(1 - abar_t / abar_{t-1})
        # so a = sqrt(abar_prev) ("predicted x_0"), d = sqrt(1 - abar_prev - sigma^2) ("direction pointing to
        # x_t"), c = sigma, b = 0. eta = 1 (the default, DDIM_ETA) is DDPM's posterior over the skipped steps;
        # eta = 0 the deterministic DDIM. Timesteps are "trailing" (999, 979, ..., 19; Lin et al. 2024, table 2):
        # the first step starts from the noise level training ends at. Measured on the shipped model (H200,
        # 2026-12-03, bench/ddim_quality.py, 2 x 1000 images): 50 steps score 94.4 % with eta 1 against 90.9 %
        # for the old deterministic, leading-spacing sampler and 93.8 % for DDPM's 1000 steps.
        if not 0.0 <= eta <= 1.0:
            raise UserError(f"eta must be between 0 (deterministic DDIM) and 1 (DDPM-like), not {eta}")
        ts = torch.tensor([round(T - k * T / steps) - 1 for k in range(steps)], dtype=torch.long)
        ab_t = abar[ts]
        prev = torch.cat([ts[1:], torch.tensor([-1])])
        ab_prev = torch.where(prev >= 0, abar[prev.clamp(min=0)], one)
        sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).clamp(min=0) ** 0.5
        a, b = ab_prev ** 0.5, torch.zeros(len(ts))
        d, c = (1 - ab_prev - sigma ** 2).clamp(min=0) ** 0.5, sigma
        kind = "ddim"
    return StepTables(ts, (1 - ab_t) ** 0.5, ab_t ** 0.5, a, b, d, c, kind)


def _step(unet, x: torch.Tensor, i: torch.Tensor, labels: torch.Tensor, tab: StepTables,
          noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pure denoising step: returns (x_prev, x0_estimate).

    ``i`` is a one-element int64 device tensor; tables are read with ``index_select`` (indexing with a
    0-dim tensor would call ``.item()``, a host sync that CUDA graph capture forbids).
    """
    def at(table: torch.Tensor) -> torch.Tensor:
        return table.index_select(0, i)

    t = at(tab.timesteps).expand(x.shape[0])
    dtype = next(unet.parameters()).dtype
    eps = unet(x.to(dtype), t, class_labels=labels).sample.float()
    x0 = ((x - at(tab.sqrt_1m_abar) * eps) / at(tab.sqrt_abar)).clamp(-1.0, 1.0)
    # DDIM's direction term uses the eps of the clipped x0 (as diffusers' DDIMScheduler with clip_sample), so the
    # step stays on one trajectory; DDPM's tables have d = 0
    eps = (x - at(tab.sqrt_abar) * x0) / at(tab.sqrt_1m_abar)
    prev = at(tab.a) * x0 + at(tab.b) * x + at(tab.d) * eps + at(tab.c) * noise
    return prev, x0


def _steer(unet, x: torch.Tensor, i: torch.Tensor, labels: torch.Tensor, tab: StepTables,
           target: float, scale: float) -> torch.Tensor:
    """x moved against the grey-level loss of its x0 estimate (noise prediction held fixed).

    The step's size and units are ``core.loss_guidance.pull``'s: ``scale`` is the run's total pull."""
    t = tab.timesteps.index_select(0, i).expand(x.shape[0])
    eps = unet(x.to(next(unet.parameters()).dtype), t, class_labels=labels).sample.float()
    sa, s1 = tab.sqrt_abar.index_select(0, i), tab.sqrt_1m_abar.index_select(0, i)
    return pull(x, lambda xg: (xg - s1 * eps) / sa, lambda x0: color_loss((x0 + 1) / 2, target), scale, len(tab))


class _GraphedSampler:
    """The whole step captured in a CUDA graph over static buffers (``core.cuda_graphs``)."""

    def __init__(self, unet, x: torch.Tensor, labels: torch.Tensor, tab: StepTables) -> None:
        self.x = x.clone()
        self.x0 = torch.zeros_like(x)
        self.noise = torch.zeros_like(x)
        self.i = torch.zeros(1, dtype=torch.long, device=x.device)
        self.labels = labels.clone()

        def step() -> None:  # the captured step: x, x0 and the counter advance in place
            prev, x0 = _step(unet, self.x, self.i, self.labels, tab, self.noise)
            self.x0.copy_(x0)
            self.x.copy_(prev)
            self.i.add_(1)

        with torch.no_grad():  # warm up (allocations, kernel selection) without touching state
            warm_up(lambda: _step(unet, self.x, self.i, self.labels, tab, self.noise), times=2)
            self.graph = capture(step)

    def replay(self) -> None:
        self.graph.replay()


def _as_model(model) -> FashionDDPM:
    if isinstance(model, FashionDDPM):
        return model
    if isinstance(model, torch.nn.Module):  # a bare UNet (its compiled forms last this call only)
        return FashionDDPM(model, ModelConfig())
    raise UserError("generate_from_class needs a FashionDDPM (load_shipped/load_weights) or a UNet2DModel")


def _class_list(classes: int | Sequence[int], n: int) -> list[int]:
    cls = [classes] if isinstance(classes, int) else list(classes)
    if not cls:
        raise UserError("Pass at least one class (0-9)")
    bad = [c for c in cls if not isinstance(c, int) or not 0 <= c <= 9]
    if bad:
        raise UserError(f"Classes must be 0-9 (Fashion-MNIST labels); got {bad}")
    if n < 1:
        raise UserError(f"n must be at least 1, not {n}")
    return [c for c in cls for _ in range(n)]


@torch.no_grad()
@ieee_fp32
def generate_from_class(
    model,
    classes: int | Sequence[int],
    n: int = 8,
    steps: int = 1000,
    seed: int = 0,
    callback: Callable[[SampleStep], None] | None = None,
    cancel: threading.Event | None = None,
    use_graph: bool | None = None,
    callback_every: int = 1,
    color_target: float | None = None,
    color_scale: float = 0.0,
    compile: str | None = None,
    eta: float = 1.0,
) -> torch.Tensor:
    """Sample ``n`` images per class; float ``[len(classes)*n, 1, 32, 32]`` in [0, 1] on the CPU.

    ``steps == 1000``: the chapter's DDPM loop; fewer: DDIM (``eta`` 1: stochastic, the default; 0: deterministic,
    ``make_tables``). ``use_graph``: None = CUDA graph on
    CUDA (falls back to eager with a warning if capture fails), True = require it, False = eager.
    ``color_target`` / ``color_scale``: loss guidance (the chapter's exercise 9, in grey levels for this
    grayscale model): each step moves x against the gradient of ``|x0 - target|`` (eager only).
    ``compile``: a ``torch.compile`` mode (``core.inputs.COMPILE_MODES``) for the UNet under the CUDA graph (the
    eager path ignores it).
    """
    steer = color_target is not None and color_scale > 0
    check_compile_mode(compile)
    if color_target is not None:
        color_scale = check_color_scale(color_scale, "the grey-loss scale")
    if color_target is not None and not (0.0 <= color_target <= 1.0 and color_scale >= 0):
        raise UserError(f"grey target {color_target} must be in [0, 1] and the scale >= 0: e.g. 0.8 and 20")
    if steer:
        use_graph = False  # the gradient step is eager
    model = _as_model(model)
    unet, cfg = model.unet, model.config
    labels_list = _class_list(classes, n)
    dev = next(unet.parameters()).device
    tab = make_tables(cfg, steps, eta).to(dev)
    total = len(tab)
    c_host = tab.c.cpu().tolist()
    ts_host = tab.timesteps.cpu().tolist()
    gen = torch.Generator(device=dev).manual_seed(seed)
    size = cfg.sample_size
    x = torch.randn((len(labels_list), 1, size, size), generator=gen, device=dev)
    labels = torch.tensor(labels_list, device=dev)
    was_training = unet.training
    unet.eval()
    graph = None
    required = use_graph is True
    if use_graph is None:
        use_graph = dev.type == "cuda"
    if use_graph:
        if dev.type != "cuda":
            raise UserError("CUDA graphs need a CUDA device; sample with use_graph=False on the CPU")
        try:
            graph = _GraphedSampler(model.compiled.get(compile) if compile else unet, x, labels, tab)
        except Exception as exc:  # capture is an optimisation: fall back unless asked for explicitly
            heal_rng_after_failed_capture()  # a failed warm-up as well as a failed capture
            if required:
                raise
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); sampling eagerly")
            graph = None
    try:
        if graph is not None:
            for k in range(total):
                _check(cancel)
                if c_host[k] != 0.0:
                    torch.randn(graph.noise.shape, generator=gen, device=dev, out=graph.noise)
                graph.replay()
                _report(callback, callback_every, k, total, ts_host[k], graph.x, graph.x0)
            x = graph.x
        else:
            noise = torch.zeros_like(x)
            i = torch.zeros(1, dtype=torch.long, device=dev)
            for k in range(total):
                _check(cancel)
                if c_host[k] != 0.0:
                    torch.randn(noise.shape, generator=gen, device=dev, out=noise)
                if steer:
                    x = _steer(unet, x, i, labels, tab, color_target, color_scale)
                x, x0 = _step(unet, x, i, labels, tab, noise)
                i.add_(1)
                _report(callback, callback_every, k, total, ts_host[k], x, x0)
    finally:
        unet.train(was_training)

    bad = None if is_finite(x) else bad_tensor(unet)
    check_result(x, "the Fashion samples", cause=(
        f"the model's weights hold NaN or inf values (e.g. {bad}): use another checkpoint" if bad else
        f"grey scale {color_scale:g} overflows: use e.g. 20" if steer and color_scale > 100 else
        "the model overflows: use another checkpoint (an earlier one, or the shipped model)"))
    return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).float().cpu()


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("sampling cancelled")


def _report(callback, every: int, k: int, total: int, t: int, x: torch.Tensor, x0: torch.Tensor) -> None:
    if callback is not None and (k % max(every, 1) == 0 or k == total - 1):
        callback(SampleStep(k, total, int(t), x.float().cpu(), x0.float().cpu()))


def noising_row(image, n: int = 8, seed: int = 0, cfg: ModelConfig | None = None):
    """One image noised at ``linspace(0, 999, n)`` timesteps (the chapter's figure).

    ``image``: uint8 ``[28, 28]`` (tensor or numpy) or a PIL image. Returns ``(images, timesteps)``:
    float ``[n, 1, 32, 32]`` in [0, 1] and int64 ``[n]``.
    """
    import numpy as np

    from .data import preprocess

    cfg = cfg or ModelConfig()
    if n < 1:
        raise UserError(f"n must be at least 1, not {n}")
    if not torch.is_tensor(image):
        image = torch.from_numpy(np.asarray(getattr(image, "convert", lambda m: image)("L"), dtype=np.uint8))
    if image.dtype != torch.uint8 or image.shape[-2:] != (28, 28):
        raise UserError("noising_row needs one 28x28 uint8 Fashion-MNIST image")
    x = preprocess(image.reshape(1, 28, 28), flip=False).expand(n, -1, -1, -1)
    timesteps = torch.linspace(0, cfg.num_train_timesteps - 1, n).long()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    noisy = build_scheduler(cfg).add_noise(x, noise, timesteps)
    return ((noisy.clamp(-1, 1) + 1) / 2), timesteps
