"""Device and precision (smray.inference) without Ray: the precisions stay within their stated
tolerance of fp32 on a trained CNN, the capability checks refuse in one line naming the field, and
the GPU branches (AMP bf16, channels_last, pinned host→device copies, the CUDA precision rules) run
on the CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from smray import inference
from smray.config import TrainConfig
from smray.errors import SmrayError
from smray.inference import (TOLERANCE_M3, autocast, cpu_supports, host_to_device, prepare_for_inference,
                             resolve_precision, select_device)
from smray.models import PaperCNN, PixelMLP, fcn_forward, patchwise_forward
from smray.trainloop import array_batches, evaluate, fit, seed_everything

#: m³/m³ per scaled unit (target_upper − target_lower of a twin cube's normalisation)
SPAN = 0.5
X86 = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})


def smooth_image(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    """(C, H, W) scaled TBs in [0, 1] with spatial structure (a 9×9 window is not white noise)."""
    img = rng.random((c, h // 4 + 3, w // 4 + 3))
    img = np.kron(img, np.ones((4, 4)))[:, :h, :w]
    return (0.7 * img + 0.3 * rng.random((c, h, w))).astype(np.float32)


def target(patches: np.ndarray) -> np.ndarray:
    """A learnable scaled soil moisture: dry (warm, polarised) windows low, wet ones high."""
    h, v = patches[:, 0].mean(axis=(1, 2)), patches[:, 1, 2:7, 2:7].mean(axis=(1, 2))
    return np.clip(0.9 - 0.6 * h + 0.4 * (v - h) ** 2 + 0.1 * patches[:, 2, 4, 4], 0, 1).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the numbers do not depend on it, and two threads on a shared 2-core machine
    spend most of their time waiting for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained() -> tuple[PaperCNN, np.ndarray, np.ndarray]:
    """The paper's CNN trained for a few epochs on patches of smooth images (weights like a real run's:
    outputs spread over the target range), and a held-out image with a land-like mask."""
    seed_everything(0)
    rng = np.random.default_rng(0)
    img = smooth_image(rng, 4, 160, 320)
    win = torch.as_tensor(img).unfold(1, 9, 1).unfold(2, 9, 1)
    ii, jj = rng.integers(0, 152, 5000), rng.integers(0, 312, 5000)
    x = win[:, ii, jj].permute(1, 0, 2, 3).contiguous().numpy()
    y = target(x)
    model = PaperCNN(4)
    cfg = TrainConfig(epochs=3, batch_size=128, lr=1e-3, patience=0)
    fit(model, lambda e: array_batches(x[:4000], y[:4000], 128, shuffle=True, seed=e),
        lambda e: array_batches(x[4000:], y[4000:], 4096), cfg)
    test = smooth_image(np.random.default_rng(1), 4, 128, 256)
    valid = np.random.default_rng(2).random((120, 248)) < 0.3
    return model.eval(), test, valid


def as_m3(a: np.ndarray) -> np.ndarray:
    return a * SPAN


@pytest.mark.parametrize("precision", ["bf16", "int8", "int8_bf16"])
def test_precision_within_tolerance_of_fp32(trained, precision: str) -> None:
    model, img, valid = trained
    if not cpu_supports(precision):
        pytest.skip(f"this CPU has no {precision} instructions")
    ref = fcn_forward(model, img, valid)
    assert float(np.nanstd(as_m3(ref))) > 0.02  # a trained model: outputs spread over the range
    prepared = prepare_for_inference(model, resolve_precision(precision, "cpu"), "cpu")
    with autocast("cpu", precision):
        got = fcn_forward(prepared, img, valid)
    assert got.dtype == np.float32 and np.array_equal(np.isfinite(got), valid)
    d = as_m3(got[valid] - ref[valid])
    rms, worst = float(np.sqrt(np.mean(d ** 2))), float(np.abs(d).max())
    rms_tol, max_tol = TOLERANCE_M3[precision]
    assert rms <= rms_tol and worst <= max_tol, (precision, rms, worst)
    assert worst > 1e-6  # the reduced arithmetic really ran (fp32 would agree to ~1e-7)
    assert abs(float(np.mean(d))) <= 2e-4, (precision, float(np.mean(d)))  # no systematic shift
    if "int8" in precision:
        assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in prepared.modules())
        assert type(model.fc1) is torch.nn.Linear  # the original model is untouched
    if "bf16" in precision:  # the input layer reads the scaled TBs in fp32 (bf16 input rounding biases maps)
        assert isinstance(prepared.conv1, inference.Float32Input) and type(model.conv1) is torch.nn.Conv2d


def test_patchwise_and_pixel_models_take_every_precision(trained) -> None:
    model, img, valid = trained
    ref = patchwise_forward(model, img, valid)
    prepared = prepare_for_inference(model, "int8_bf16", "cpu")
    with autocast("cpu", "int8_bf16"):
        got = patchwise_forward(prepared, img, valid)  # bf16 outputs come back as float32 numpy
    assert np.nanmax(np.abs(as_m3(got - ref))) <= TOLERANCE_M3["int8_bf16"][1]
    pixel = PixelMLP(4).eval()
    q = prepare_for_inference(pixel, "int8", "cpu")  # every layer quantised: no float parameters left
    assert not list(q.parameters())
    np.testing.assert_allclose(fcn_forward(q, img, valid), fcn_forward(pixel, img, valid), atol=2e-2 / SPAN)


def test_fp32_is_unchanged(trained) -> None:
    model, img, valid = trained
    prepared = prepare_for_inference(model, "fp32", "cpu")
    with autocast("cpu", "fp32"):
        assert np.array_equal(fcn_forward(prepared, img, valid), fcn_forward(model, img, valid), equal_nan=True)


# --------------------------------------------------------------------------------------------
# Capability checks: one line naming the field, before work
# --------------------------------------------------------------------------------------------
def test_cpu_capabilities_from_flags() -> None:
    from smray.config import PREDICT_PRECISIONS

    assert inference.PRECISIONS == PREDICT_PRECISIONS  # two copies of one list (config validates, inference runs)
    assert cpu_supports("fp32", frozenset())
    assert not cpu_supports("bf16", frozenset({"avx512f", "avx2"}))
    assert not cpu_supports("int8", frozenset({"avx2", "fma"}))
    assert cpu_supports("int8", X86) and cpu_supports("bf16", X86) and cpu_supports("int8_bf16", X86)
    assert not cpu_supports("int8_bf16", frozenset({"avx512_vnni"}))
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx2"})) == "fp32"
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx512_vnni"})) == "int8"
    assert resolve_precision("auto", "cpu", flags=X86) == "int8_bf16"
    assert "flags" in open("/proc/cpuinfo").read() and inference.cpu_flags()  # this machine's are read


@pytest.mark.parametrize("precision", ["int8", "bf16", "int8_bf16"])
def test_precision_the_cpu_lacks_is_one_line_naming_the_field(precision: str) -> None:
    with pytest.raises(SmrayError) as err:
        resolve_precision(precision, "cpu", flags=frozenset({"avx2", "fma"}))
    msg = str(err.value)
    assert msg.startswith("predict.precision: ") and "\n" not in msg and "use fp32" in msg
    with pytest.raises(SmrayError, match=r"^predict.precision: must be one of"):
        resolve_precision("fp16", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_use_gpu_without_cuda_is_one_line_naming_the_field() -> None:
    with pytest.raises(SmrayError, match=r"^predict.use_gpu: true, but this machine has no CUDA device"):
        select_device(True, "predict.use_gpu")
    with pytest.raises(SmrayError, match=r"^train.use_gpu: "):
        select_device(True, "train.use_gpu")
    assert select_device(None).type == "cpu" and select_device(False).type == "cpu"


# --------------------------------------------------------------------------------------------
# The GPU branches, run on the CPU
# --------------------------------------------------------------------------------------------
def test_cuda_precision_rules() -> None:
    with pytest.raises(SmrayError, match=r"^predict.precision: int8 \(dynamic quantisation\) runs on the CPU only"):
        resolve_precision("int8", "cuda")
    if not torch.cuda.is_available():  # a driver planning GPU actors: auto is bf16 there
        assert resolve_precision("auto", "cuda") == "bf16" and resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(SmrayError, match="CPU only"):
        prepare_for_inference(PaperCNN(4), "int8", "meta")


def test_channels_last_gives_the_same_map(trained) -> None:
    model, img, valid = trained
    cl = prepare_for_inference(PaperCNN(4), "fp32", "cpu", channels_last=True)
    cl.load_state_dict(model.state_dict())
    cl = prepare_for_inference(cl, "fp32", "cpu", channels_last=True)
    assert cl.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert not cl.conv2.weight.is_contiguous()
    np.testing.assert_allclose(fcn_forward(cl, img, valid), fcn_forward(model, img, valid), atol=1e-5, equal_nan=True)
    batch = host_to_device(np.random.default_rng(0).random((8, 4, 9, 9)), "cpu", memory_format=torch.channels_last)
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        np.testing.assert_allclose(cl(batch).numpy(), model(batch.contiguous()).numpy(), atol=1e-5)


def test_pinned_copy_branch(monkeypatch) -> None:
    """The CUDA copy path: page-locked source, non-blocking copy. A CPU-only torch cannot page-lock
    memory, so pin_memory is recorded here; the copy itself runs."""
    calls: list[str] = []
    real_to = torch.Tensor.to

    def pin(self: torch.Tensor) -> torch.Tensor:
        calls.append("pin")
        return self.clone()

    def to(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        calls.append(f"to non_blocking={kwargs.get('non_blocking')}")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.Tensor, "to", to)
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = host_to_device(a, "cpu", pin=True)
    assert calls == ["pin", "to non_blocking=True"]
    assert t.dtype == torch.float32 and np.array_equal(t.numpy(), a)
    calls.clear()
    host_to_device(a, "cpu")  # the CPU default: no pinning, a blocking copy
    assert calls == ["to non_blocking=False"]


def test_amp_bf16_training_learns_and_keeps_fp32_weights() -> None:
    """The AMP branch of training (train.precision bf16): autocast on the worker's device."""
    rng = np.random.default_rng(3)
    x = smooth_image(rng, 4, 90, 90)
    win = torch.as_tensor(x).unfold(1, 9, 1).unfold(2, 9, 1).reshape(4, -1, 9, 9).permute(1, 0, 2, 3).contiguous()
    xs = win.numpy()[:800]
    ys = target(xs)
    seed_everything(1)
    model = PaperCNN(4)
    before = evaluate(model, array_batches(xs, ys, 1024), "bf16")["loss"]
    hist = fit(model, lambda e: array_batches(xs, ys, 128, shuffle=True, seed=e), None,
               TrainConfig(epochs=2, batch_size=128, patience=0, precision="bf16"))
    after = evaluate(model, array_batches(xs, ys, 1024), "bf16")["loss"]
    assert after < 0.5 * before and all(np.isfinite(h["train_loss"]) for h in hist)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(SmrayError, match=r"^train.precision: must be fp32 or bf16"):
        TrainConfig(precision="int8")


def test_predict_plans_precision_and_gpu_before_work(monkeypatch) -> None:
    """The plan run_predict and the chain make first (smray.predict.plan_precision), with this
    machine's CPU flags replaced by those of a CPU without VNNI/bf16; the SVR and the physical
    retrieval ignore the setting. Ray is not started: the local runtime would be this machine."""
    from smray import raysupport
    from smray.config import Config, PredictConfig
    from smray.predict import plan_precision, planned_device

    def cfg(**predict) -> Config:
        return dataclasses.replace(Config(), predict=PredictConfig(**predict))

    monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(raysupport, "is_initialized", lambda: False)
    with pytest.raises(SmrayError, match=r"^predict.precision: int8 needs a CPU with one of the instructions "):
        plan_precision(cfg(precision="int8"), "cnn", "local")
    with pytest.raises(SmrayError, match=r"^predict.precision: bf16 needs a CPU"):
        plan_precision(cfg(precision="bf16"), "pixel", "ray")
    assert plan_precision(cfg(precision="auto"), "cnn", "ray") == "fp32"
    assert plan_precision(cfg(precision="int8"), "svr", "local") == "fp32"
    assert plan_precision(cfg(precision="int8"), "physical", "ray") == "fp32"
    if not torch.cuda.is_available():
        assert planned_device(cfg(), "ray") == planned_device(cfg(), "local") == "cpu"
        with pytest.raises(SmrayError, match=r"^predict.use_gpu: true, but this machine has no CUDA device"):
            plan_precision(cfg(use_gpu=True), "cnn", "local")
        with pytest.raises(SmrayError, match=r"^predict.use_gpu: GPU prediction actors need 1 GPU; this machine, "):
            plan_precision(cfg(use_gpu=True), "cnn", "ray")
