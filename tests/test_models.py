"""The paper's CNN layer by layer, the same-budget pixel model, and whole-image (fully convolutional)
inference against patch-wise inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from smray.config import ModelConfig, PatchConfig
from smray.errors import SmrayError
from smray.models import (PaperCNN, PixelMLP, build_model, count_parameters, fcn_forward, input_channels,
                          paper_cnn_parameters, patchwise_forward)

#: the paper's shapes, (lat, lon, channels) after each layer, then the two fully connected layers
PAPER_SHAPES = [("conv1", (8, 8, 20)), ("pool1", (7, 7, 20)), ("conv2", (6, 6, 100)), ("pool2", (3, 3, 100)),
                ("conv3", (2, 2, 200)), ("fc1", (500,)), ("fc2", (1,))]


def _paper_order(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


@pytest.mark.parametrize("channels", [4, 8])
def test_every_intermediate_shape_is_the_papers(channels):
    shapes = PaperCNN(channels).intermediate_shapes()
    assert shapes[0] == ("input", (channels, 9, 9))
    assert [(name, _paper_order(s)) for name, s in shapes[1:]] == PAPER_SHAPES


@pytest.mark.parametrize("channels", [4, 8])
def test_forward_shape_and_parameter_count(channels):
    model = PaperCNN(channels)
    y = model(torch.rand(5, channels, 9, 9))
    assert y.shape == (5,)
    expected = {4: 489_641, 8: 489_961}[channels]
    assert count_parameters(model) == paper_cnn_parameters(channels) == expected


def test_width_scales_every_layer():
    shapes = dict(PaperCNN(4, width=2.0).intermediate_shapes())
    assert shapes["conv1"][0] == 40 and shapes["conv2"][0] == 200 and shapes["conv3"][0] == 400
    assert shapes["fc1"] == (1000,)


def test_wrong_input_shape_is_one_line_error():
    with pytest.raises(SmrayError, match=r"expected \(N, 4, 9, 9\)"):
        PaperCNN(4)(torch.rand(2, 8, 9, 9))


@pytest.mark.parametrize("channels", [4, 8])
def test_pixel_model_has_the_same_budget(channels):
    cnn, pixel = count_parameters(PaperCNN(channels)), count_parameters(PixelMLP(channels))
    assert abs(pixel - cnn) / cnn < 0.10
    assert abs(pixel - cnn) / cnn < 0.01  # the design is tighter than required


def test_pixel_model_ignores_non_centre_pixels():
    torch.manual_seed(0)
    model = PixelMLP(4).eval()
    x = torch.rand(16, 4, 9, 9)
    noisy = torch.rand(16, 4, 9, 9)
    noisy[:, :, 4, 4] = x[:, :, 4, 4]
    assert torch.equal(model(x), model(noisy))
    moved = x.clone()
    moved[:, :, 4, 4] += 0.5
    assert not torch.allclose(model(x), model(moved))


def test_cnn_sees_the_whole_patch():
    torch.manual_seed(0)
    model = PaperCNN(4).eval()
    x = torch.rand(4, 4, 9, 9)
    for i, j in [(0, 0), (8, 8), (0, 8), (4, 4)]:
        y = x.clone()
        y[:, :, i, j] += 1.0
        assert not torch.allclose(model(x), model(y)), (i, j)


def test_build_model_and_input_channels():
    assert input_channels(PatchConfig()) == 4
    assert input_channels(PatchConfig(stack_passes=True)) == 8
    cnn = build_model(ModelConfig(kind="cnn", activation="tanh", width=0.5, dropout=0.2), 8)
    assert isinstance(cnn, PaperCNN) and cnn.in_channels == 8 and isinstance(cnn.act1, torch.nn.Tanh)
    assert isinstance(cnn.dropout, torch.nn.Dropout) and cnn.dropout.p == 0.2
    assert isinstance(build_model(ModelConfig(kind="pixel"), 4), PixelMLP)
    with pytest.raises(SmrayError, match="svr"):
        build_model(ModelConfig(kind="svr"), 4)


# --------------------------------------------------------------------------------------------
# Whole-image inference
# --------------------------------------------------------------------------------------------
def _model(kind: str, channels: int, activation: str = "relu", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cls = PaperCNN if kind == "cnn" else PixelMLP
    return cls(channels, activation=activation, width=0.5, dropout=0.3).eval()


@settings(max_examples=12, deadline=None)
@given(h=st.integers(9, 30), w=st.integers(9, 30), channels=st.sampled_from([4, 8]),
       activation=st.sampled_from(["relu", "tanh", "sigmoid"]), band_rows=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_fcn_equals_patchwise(h, w, channels, activation, band_rows, seed):
    model = _model("cnn", channels, activation, seed % 7)
    rng = np.random.default_rng(seed)
    img = rng.random((channels, h, w), dtype=np.float32)
    ref = patchwise_forward(model, img)
    assert ref.shape == (h - 8, w - 8)
    np.testing.assert_allclose(fcn_forward(model, img, band_rows=band_rows), ref, rtol=0, atol=1e-5)
    valid = rng.random(ref.shape) < 0.4
    got = fcn_forward(model, img, valid=valid, band_rows=band_rows, chunk=7)
    np.testing.assert_allclose(got[valid], ref[valid], rtol=0, atol=1e-5)
    assert np.isnan(got[~valid]).all()


@pytest.mark.parametrize("kind", ["cnn", "pixel"])
def test_fcn_on_an_odd_sized_image_with_nan_cells(kind):
    model = _model(kind, 4)
    rng = np.random.default_rng(3)
    img = rng.random((4, 41, 67), dtype=np.float32)
    img[:, 10:13, 20:22] = np.nan  # "ocean"
    ref = patchwise_forward(model, img)
    touched = np.zeros(ref.shape, dtype=bool)  # windows containing a NaN cell
    touched[max(0, 10 - 8):13, max(0, 20 - 8):22] = True
    if kind == "pixel":
        touched[:] = False
        touched[10 - 4:13 - 4, 20 - 4:22 - 4] = True
    assert np.isnan(ref[touched]).all() and np.isfinite(ref[~touched]).all()
    for valid in (None, ~touched):
        got = fcn_forward(model, img, valid=valid, band_rows=16)
        np.testing.assert_allclose(got[~touched], ref[~touched], rtol=0, atol=1e-5)


def test_fully_convolutional_module_shares_parameters():
    model = _model("cnn", 4)
    fcn = model.as_fully_convolutional()
    x = torch.rand(2, 4, 9, 9)
    np.testing.assert_allclose(fcn(x)[:, 0, 0].detach().numpy(), model(x).detach().numpy(), atol=1e-6)
    with torch.no_grad():
        model.fc2.bias += 1.0
    np.testing.assert_allclose(fcn(x)[:, 0, 0].detach().numpy(), model(x).detach().numpy(), atol=1e-6)


def test_fcn_rejects_bad_inputs():
    model = _model("cnn", 4)
    with pytest.raises(SmrayError, match="expected"):
        fcn_forward(model, np.zeros((4, 8, 20), dtype=np.float32))
    with pytest.raises(SmrayError, match="valid mask"):
        fcn_forward(model, np.zeros((4, 12, 20), dtype=np.float32), valid=np.ones((5, 5), dtype=bool))
