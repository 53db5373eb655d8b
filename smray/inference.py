"""Where and in what arithmetic a torch model runs: the device chosen once, reduced precision, fast copies.

One function per decision, each a plain function of (setting, machine), so the GPU branches run on a
CPU in the tests too:

* :func:`select_device` — ``use_gpu`` (True / False / None = CUDA when present) → ``torch.device``;
  ``True`` on a machine without CUDA is one :class:`SmrayError` line naming the field, before work.
* :func:`resolve_precision` — ``predict.precision`` (``fp32`` | ``bf16`` | ``int8`` | ``int8_bf16`` |
  ``auto``) for a device: ``bf16`` needs native bf16 arithmetic (x86 ``avx512_bf16`` / ``amx_bf16``,
  Arm ``bf16``; on CUDA ``torch.cuda.is_bf16_supported()``), ``int8`` needs int8 dot-product
  instructions (``avx512_vnni`` / ``avx_vnni``, Arm ``asimddp``) and runs on the CPU only;
  ``int8_bf16`` is both (int8 fully connected layers, bf16 convolutions) and needs both; ``auto``
  takes the fastest the machine supports (CPU: int8_bf16, int8, bf16, fp32 in that order; CUDA:
  bf16, else fp32).
* :func:`prepare_for_inference` — the model in eval mode on the device: ``int8`` = dynamic
  quantisation of the ``nn.Linear`` layers (int8 weights, activations quantised per batch; the
  fully connected 800 → 500 layer is ~3/4 of the CNN's work); ``bf16``: the input layer stays fp32
  (the scaled TBs rounded to bf16 bias the maps); convolution weights ``channels_last`` (NHWC: the
  layout of cuDNN's and oneDNN's fast kernels; on this 2-core CPU the masked whole-map forward takes
  about half the time it took with NCHW, docs/benchmarks.md).
* :func:`autocast` — the context the forward runs in: ``torch.autocast(device, bfloat16)`` for bf16
  (convolutions and matrix products in bf16, accumulation and outputs in fp32), else nothing.
* :func:`host_to_device` — numpy/tensor → device tensor; to CUDA through pinned memory with a
  non-blocking copy.

Errors (bf16 / int8 off the CPU's instruction set, int8 on a GPU) name ``predict.precision``.
Measured speed and accuracy: ``benchmarks/bench_precision.py``, docs/benchmarks.md. Example::

    device = select_device(cfg.predict.use_gpu, "predict.use_gpu")
    precision = resolve_precision(cfg.predict.precision, device)
    model = prepare_for_inference(model, precision, device)
    with autocast(device, precision), torch.no_grad():
        out = model(host_to_device(patches, device))
"""

from __future__ import annotations

import contextlib
import copy
import platform
import warnings
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from smray.errors import SmrayError

#: the values of ``predict.precision`` (``auto`` resolves to one of the others per machine)
PRECISIONS = ("fp32", "bf16", "int8", "int8_bf16", "auto")
#: resolved precisions whose convolutions / matrix products run under bf16 autocast
BF16_AUTOCAST = ("bf16", "int8_bf16")
#: resolved precisions whose nn.Linear layers are dynamically quantised to int8
INT8_LINEAR = ("int8", "int8_bf16")
#: /proc/cpuinfo flags that give native bf16 arithmetic (x86: AVX-512 BF16, AMX; Arm: FEAT_BF16)
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
#: flags of int8 dot-product instructions that dynamic quantisation's kernels use (x86 VNNI, Arm dotprod)
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
#: the largest differences from fp32 the tests accept per precision, m³/m³ (RMS, largest) on a map
#: whose targets span ~0.5 m³/m³; docs/benchmarks.md has the measured values
TOLERANCE_M3 = {"fp32": (1e-6, 1e-5), "bf16": (1e-3, 1e-2), "int8": (1e-3, 1e-2), "int8_bf16": (1e-3, 1e-2)}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm) from /proc/cpuinfo; empty
    where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_supports(precision: str, flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU (or one with ``flags``) runs ``precision`` natively: fp32 always; bf16 with a
    flag of :data:`BF16_FLAGS` and oneDNN's bf16 path; int8 with a flag of :data:`INT8_FLAGS` and a
    quantised engine (fbgemm/x86 or qnnpack)."""
    flags = cpu_flags() if flags is None else flags
    if precision == "fp32":
        return True
    if precision == "bf16":
        return any(f in flags for f in BF16_FLAGS) and bool(torch.backends.mkldnn.is_available())
    if precision == "int8":
        engines = set(torch.backends.quantized.supported_engines)
        return any(f in flags for f in INT8_FLAGS) and bool(engines & {"x86", "fbgemm", "qnnpack"})
    if precision == "int8_bf16":
        return cpu_supports("int8", flags) and cpu_supports("bf16", flags)
    return False


def select_device(use_gpu: bool | None, field: str = "predict.use_gpu") -> torch.device:
    """``cuda`` when ``use_gpu`` is True (SmrayError naming ``field`` when this machine has no CUDA
    device) or None and CUDA is present; else ``cpu``. Call once per process, before any work."""
    cuda = torch.cuda.is_available()
    if use_gpu and not cuda:
        raise SmrayError(f"{field}: true, but this machine has no CUDA device (torch {torch.__version__}, "
                         f"{platform.machine()}); set it to false or null, or run on a GPU node")
    return torch.device("cuda") if (cuda and use_gpu is not False) else torch.device("cpu")


def resolve_precision(precision: str, device: torch.device | str, field: str = "predict.precision",
                      flags: frozenset[str] | None = None) -> str:
    """``precision`` checked for ``device`` (``auto`` → the fastest supported); SmrayError naming
    ``field`` when the device cannot run it."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise SmrayError(f"{field}: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cuda":
        if precision in INT8_LINEAR:
            raise SmrayError(f"{field}: {precision} (dynamic quantisation) runs on the CPU only; use bf16 or fp32 "
                             f"on a GPU")
        if not torch.cuda.is_available():  # a driver without a GPU planning GPU workers: they check again
            return "bf16" if precision == "auto" else precision
        bf16 = bool(torch.cuda.is_bf16_supported())
        if precision == "auto":
            return "bf16" if bf16 else "fp32"
        if precision == "bf16" and not bf16:
            raise SmrayError(f"{field}: bf16, but the GPU {torch.cuda.get_device_name(device)} has no bf16 "
                             f"arithmetic; use fp32")
        return precision
    if precision == "auto":
        return next(p for p in ("int8_bf16", "int8", "bf16", "fp32") if cpu_supports(p, flags))
    for part, need in (("bf16", BF16_FLAGS), ("int8", INT8_FLAGS)):
        if part in precision and not cpu_supports(part, flags):
            raise SmrayError(f"{field}: {precision} needs a CPU with one of the instructions {', '.join(need)}; "
                             f"this {platform.machine()} CPU has none (use fp32)")
    return precision


def prepare_for_inference(model: nn.Module, precision: str, device: torch.device | str,
                          channels_last: bool = True) -> nn.Module:
    """``model`` ready for inference: eval mode, on ``device``; ``int8``: its ``nn.Linear`` layers
    dynamically quantised (a new module; the original is not changed); ``bf16``: its input layer
    in fp32 (a copy); ``channels_last`` (default: True) stores the convolution weights NHWC, the
    layout cuDNN's and oneDNN's fast kernels want.
    ``precision`` must be resolved (:func:`resolve_precision`)."""
    device = torch.device(device)
    if precision not in PRECISIONS[:-1]:
        raise SmrayError(f"predict.precision: resolve {precision!r} first ({', '.join(PRECISIONS[:-1])})")
    model = model.eval().to(device)
    if precision in INT8_LINEAR:
        if device.type != "cpu":
            raise SmrayError(f"predict.precision: {precision} (dynamic quantisation) runs on the CPU only")
        with warnings.catch_warnings():  # torch marks eager-mode quantisation deprecated (torchao replaces it)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        _float_inputs(model)
    if precision in BF16_AUTOCAST:
        if precision not in INT8_LINEAR:
            model = copy.deepcopy(model)  # the original is not changed
        _fp32_input_layer(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


class Float32Input(nn.Module):
    """A layer run in float32 with autocast off: a dynamically quantised layer (under bf16 autocast
    its input may be bf16, which the int8 kernels do not take), or the input layer under bf16
    autocast (:func:`prepare_for_inference`)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.layer(x.float())


def _fp32_input_layer(model: nn.Module) -> None:
    """Wrap the first convolution or linear layer of ``model`` (the one that reads the scaled TBs) in
    :class:`Float32Input`. Its input rounded to bf16 (8-bit mantissa: ~0.4 % of a scaled TB, about 0.5 K)
    shifted a trained CNN's maps by a systematic −0.0008 m³/m³ (RMS 0.0011); with the first layer in
    fp32 the shift is −0.00005 (RMS 0.0002) at no measurable cost (it is ~2 % of the work)."""
    def first(parent: nn.Module) -> bool:  # depth first, in registration order: True once found
        for name, child in parent.named_children():
            if isinstance(child, Float32Input):
                return True
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                setattr(parent, name, Float32Input(child))
                return True
            if first(child):
                return True
        return False

    first(model)


def _float_inputs(model: nn.Module) -> None:
    """Wrap every dynamically quantised Linear of ``model`` (in place) in :class:`Float32Input`."""
    for name, child in model.named_children():
        if isinstance(child, torch.ao.nn.quantized.dynamic.Linear):
            setattr(model, name, Float32Input(child))
        else:
            _float_inputs(child)


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """The forward pass's arithmetic: bf16 autocast on ``device`` for ``bf16`` / ``int8_bf16`` (the
    same code on CPU and CUDA), plain fp32 otherwise (int8 layers quantise their own inputs)."""
    if precision in BF16_AUTOCAST:
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            yield
    else:
        yield


def host_to_device(data: np.ndarray | Tensor, device: torch.device | str, *, pin: bool | None = None,
                   memory_format: torch.memory_format | None = None) -> Tensor:
    """float32 ``data`` on ``device``. To CUDA (``pin`` default) the host buffer is page-locked first
    and copied with ``non_blocking=True``, so the copy overlaps the GPU's work on the previous
    input; ``memory_format`` (e.g. ``torch.channels_last`` for a 4-D batch) is applied on the device."""
    device = torch.device(device)
    t = data if isinstance(data, Tensor) else torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    t = t.float()
    pin = device.type == "cuda" if pin is None else pin
    if pin and not t.is_pinned():
        t = t.pin_memory()
    t = t.to(device, non_blocking=pin)
    if memory_format is not None and t.ndim == 4:
        t = t.contiguous(memory_format=memory_format)
    return t


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously; timings need this)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["PRECISIONS", "BF16_AUTOCAST", "INT8_LINEAR", "TOLERANCE_M3", "Float32Input", "cpu_flags", "cpu_supports",
           "select_device", "resolve_precision", "prepare_for_inference", "autocast", "host_to_device", "synchronize"]
