"""The retrieval models: the paper's CNN, a centre-pixel MLP of the same budget, and whole-image inference.

Inputs are brightness-temperature patches scaled to [0, 1] (:mod:`smray.normalise`), shape
``(N, C, 9, 9)`` in (sample, channel, lat, lon) order, channels in ``patches.channels`` order
(C = 4: 6.9 GHz H, V, 10.7 GHz H, V; C = 8 when both passes are stacked). Outputs are the scaled
soil moisture, shape ``(N,)`` (the model is trained on [0, 1] targets; no output clamp).

:class:`PaperCNN` is the network of the paper, layer for layer (shapes as (lat, lon, channels)):

==========================  =================  =========
layer                       output             params (C=4)
==========================  =================  =========
input                       (9, 9, C)
conv 20 × 2×2               (8, 8, 20)         340
max-pool 2×2, stride 1      (7, 7, 20)
conv 100 × 2×2              (6, 6, 100)        8,100
max-pool 2×2, stride 2      (3, 3, 100)
conv 200 × 2×2              (2, 2, 200)        80,200
fully connected 500         500                400,500
fully connected 1           1                  501
==========================  =================  =========

489,641 parameters for C = 4 (489,961 for C = 8). The paper names no activation; smray puts the
configured one (``model.activation``, default ReLU) after every convolution and after the 500-unit
layer, i.e. everywhere except the linear output. All three choices are monotone non-decreasing, so
activation-then-pool equals pool-then-activation and the placement relative to pooling does not
matter. ``model.dropout`` > 0 adds dropout between the 500-unit layer and the output (also usable
for MC-dropout). Loss: mean squared error (the paper's Euclidean loss).

:class:`PixelMLP` sees only the centre pixel's C TBs (``x[:, :, 4, 4]``) through four hidden layers
of equal width — as many nonlinear layers as the CNN — sized so that its parameter count matches
the CNN's: 402 units for C = 4 (488,431 parameters, −0.25 %), 402 for C = 8 (490,039, +0.02 %).

Whole-image inference: :func:`fcn_forward` gives, for every 9×9 window of a ``(C, H, W)`` image,
exactly the patch-wise output, as an ``(H-8, W-8)`` map (pixel ``[i, j]`` is the window whose
top-left corner is ``[i, j]``, i.e. centred on image pixel ``[i+4, j+4]``). The stride-2 pooling is
computed at stride 1 over the whole image and the following layers read it at spacing 2 (dilated,
"à trous"); with a ``valid`` mask only the trunk (conv 1, conv 2) is dense and the last layers run
at the needed positions only. Example::

    model = build_model(cfg.model, input_channels(cfg.patches)).eval()
    sm01 = fcn_forward(model, tb01_image, valid=land_centres)   # (H-8, W-8), NaN off the mask
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from smray.config import ModelConfig, PatchConfig
from smray.errors import SmrayError
from smray.inference import host_to_device

#: patch edge the models are built for (cells)
PATCH_SIZE = 9
#: index of the centre pixel in a 9×9 patch
CENTRE = PATCH_SIZE // 2
#: the paper's channel counts of conv 1, conv 2, conv 3 and the fully connected layer (width = 1)
PAPER_WIDTHS = (20, 100, 200, 500)

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def activation_module(name: str) -> nn.Module:
    """A fresh activation layer for ``model.activation`` (relu, tanh, sigmoid)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise SmrayError(f"model.activation: must be relu, tanh or sigmoid, got {name!r}") from None


def input_channels(patch_cfg: PatchConfig) -> int:
    """Model input channels: ``len(patches.channels)``, doubled when both passes are stacked."""
    return len(patch_cfg.channels) * (2 if patch_cfg.stack_passes else 1)


def scaled_widths(width: float) -> tuple[int, int, int, int]:
    """(conv 1, conv 2, conv 3, fully connected) sizes for a width multiplier (1.0 = 20/100/200/500)."""
    return tuple(max(1, int(round(w * width))) for w in PAPER_WIDTHS)  # type: ignore[return-value]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (scalars)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_input(x: Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels or x.shape[2] != PATCH_SIZE or x.shape[3] != PATCH_SIZE:
        raise SmrayError(f"model input: expected (N, {in_channels}, {PATCH_SIZE}, {PATCH_SIZE}) patches, "
                         f"got {tuple(x.shape)}")


class PaperCNN(nn.Module):
    """The paper's CNN (see the module docstring for the layer table).

    Args:
        in_channels: C, input channels (4, or 8 with stacked passes).
        activation: "relu", "tanh" or "sigmoid", after each conv and after the fully connected layer.
        width: multiplier of the 20/100/200/500 filters/units (1.0 = the paper).
        dropout: dropout probability before the output layer (0 = none).
    """

    def __init__(self, in_channels: int = 4, activation: str = "relu", width: float = 1.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if in_channels < 1:
            raise SmrayError(f"model input: in_channels must be >= 1, got {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise SmrayError(f"model.dropout: must be in [0, 1), got {dropout}")
        if width <= 0:
            raise SmrayError(f"model.width: must be > 0, got {width}")
        c1, c2, c3, f1 = scaled_widths(width)
        self.in_channels = in_channels
        self.activation = activation
        self.width = float(width)
        self.dropout_p = float(dropout)
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=2)
        self.act1 = activation_module(activation)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=2)
        self.act2 = activation_module(activation)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=2)
        self.act3 = activation_module(activation)
        self.fc1 = nn.Linear(c3 * 2 * 2, f1)
        self.act4 = activation_module(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc2 = nn.Linear(f1, 1)

    def trunk(self, x: Tensor) -> Tensor:
        """Conv 1 → pool 1 → conv 2 (with activations): ``(N, C, H, W) -> (N, c2, H-3, W-3)``;
        valid on any spatial size (all stride 1)."""
        return self.act2(self.conv2(self.pool1(self.act1(self.conv1(x)))))

    def head(self, conv3_out: Tensor) -> Tensor:
        """Fully connected 500 → dropout → fully connected 1 on flattened conv-3 outputs
        ``(N, c3·2·2)`` (flattened in (channel, lat, lon) order) -> ``(N,)``."""
        return self.fc2(self.dropout(self.act4(self.fc1(conv3_out)))).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """Patches ``(N, C, 9, 9)`` scaled TBs -> ``(N,)`` scaled soil moisture."""
        _check_input(x, self.in_channels)
        h = self.pool2(self.trunk(x))
        h = self.act3(self.conv3(h))
        return self.head(torch.flatten(h, 1))

    def intermediate_shapes(self, size: int = PATCH_SIZE) -> list[tuple[str, tuple[int, ...]]]:
        """Per-sample output shape of every layer for a ``size × size`` input, in torch order
        ((channels, lat, lon) for conv/pool layers, (units,) for fully connected ones), from a
        forward pass of zeros."""
        x = torch.zeros(1, self.in_channels, size, size)
        out: list[tuple[str, tuple[int, ...]]] = [("input", tuple(x.shape[1:]))]
        with torch.no_grad():
            for name in ("conv1", "pool1", "conv2", "pool2", "conv3"):
                x = getattr(self, name)(x)
                if name.startswith("conv"):
                    x = getattr(self, "act" + name[-1])(x)
                out.append((name, tuple(x.shape[1:])))
            x = self.act4(self.fc1(torch.flatten(x, 1)))
            out.append(("fc1", tuple(x.shape[1:])))
            x = self.fc2(x)
            out.append(("fc2", tuple(x.shape[1:])))
        return out

    def as_fully_convolutional(self) -> FullyConvCNN:
        """The dense whole-image equivalent (shares this model's parameters)."""
        return FullyConvCNN(self)


class FullyConvCNN(nn.Module):
    """:class:`PaperCNN` rewritten as a fully convolutional network: ``(N, C, H, W) -> (N, H-8, W-8)``,
    output ``[n, i, j]`` = the CNN's output on the window ``[i:i+9, j:j+9]``.

    Pool 2 runs at stride 1; conv 3 then reads it with dilation 2, and the fully connected 500 layer
    becomes a 2×2 convolution with dilation 2 over conv 3's output (its weight reshaped from
    ``(500, c3·2·2)`` to ``(500, c3, 2, 2)``, the order ``torch.flatten`` uses); the output layer is
    a 1×1 convolution. Parameters are shared with the wrapped CNN, not copied.
    """

    def __init__(self, cnn: PaperCNN) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, x: Tensor) -> Tensor:
        m = self.cnn
        if x.ndim != 4 or x.shape[1] != m.in_channels or x.shape[2] < PATCH_SIZE or x.shape[3] < PATCH_SIZE:
            raise SmrayError(f"image input: expected (N, {m.in_channels}, H>=9, W>=9), got {tuple(x.shape)}")
        h = F.max_pool2d(m.trunk(x), kernel_size=2, stride=1)
        h = m.act3(F.conv2d(h, m.conv3.weight, m.conv3.bias, dilation=2))
        w1 = m.fc1.weight.reshape(m.fc1.out_features, m.conv3.out_channels, 2, 2)
        h = m.dropout(m.act4(F.conv2d(h, w1, m.fc1.bias, dilation=2)))
        w2 = m.fc2.weight.reshape(1, m.fc2.in_features, 1, 1)
        return F.conv2d(h, w2, m.fc2.bias)[:, 0]


#: hidden layers of the same-budget pixel model (= the CNN's nonlinear layers: 3 conv + fc 500)
PIXEL_HIDDEN_LAYERS = 4


class PixelMLP(nn.Module):
    """Centre pixel only: ``x[:, :, 4, 4]`` (C scaled TBs) through ``len(hidden)`` hidden layers.

    Takes the same ``(N, C, 9, 9)`` patches as :class:`PaperCNN` and ignores every other pixel.
    ``hidden=None`` gives the same-budget design: four hidden layers of :func:`matched_hidden_width`
    units (parameter count within 1 % of ``PaperCNN(in_channels, width=width)``).

    Args:
        in_channels: C.
        activation: "relu", "tanh" or "sigmoid", after every hidden layer.
        width: the CNN width multiplier whose budget is matched (ignored when ``hidden`` is given).
        dropout: dropout probability before the output layer.
        hidden: explicit hidden-layer sizes.
    """

    def __init__(self, in_channels: int = 4, activation: str = "relu", width: float = 1.0,
                 dropout: float = 0.0, hidden: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if in_channels < 1:
            raise SmrayError(f"model input: in_channels must be >= 1, got {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise SmrayError(f"model.dropout: must be in [0, 1), got {dropout}")
        if hidden is None:
            hidden = (matched_hidden_width(in_channels, width),) * PIXEL_HIDDEN_LAYERS
        self.in_channels = in_channels
        self.activation = activation
        self.width = float(width)
        self.dropout_p = float(dropout)
        self.hidden = tuple(int(h) for h in hidden)
        layers: list[nn.Module] = []
        n_in = in_channels
        for n_out in self.hidden:
            layers += [nn.Linear(n_in, n_out), activation_module(activation)]
            n_in = n_out
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(n_in, 1)

    def forward_pixels(self, tb: Tensor) -> Tensor:
        """Centre-pixel TBs ``(N, C)`` -> ``(N,)``."""
        return self.out(self.dropout(self.body(tb))).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """Patches ``(N, C, 9, 9)`` -> ``(N,)``, from ``x[:, :, 4, 4]`` only."""
        _check_input(x, self.in_channels)
        return self.forward_pixels(x[:, :, CENTRE, CENTRE])


def mlp_parameters(in_channels: int, hidden: tuple[int, ...]) -> int:
    """Parameters of an MLP ``in_channels -> hidden... -> 1`` (weights and biases)."""
    sizes = (in_channels, *hidden, 1)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def paper_cnn_parameters(in_channels: int, width: float = 1.0) -> int:
    """Parameters of ``PaperCNN(in_channels, width=width)`` (closed form)."""
    c1, c2, c3, f1 = scaled_widths(width)
    return ((in_channels * 4 + 1) * c1 + (c1 * 4 + 1) * c2 + (c2 * 4 + 1) * c3
            + (c3 * 4 + 1) * f1 + f1 + 1)


def matched_hidden_width(in_channels: int, width: float = 1.0) -> int:
    """Width h of :data:`PIXEL_HIDDEN_LAYERS` equal hidden layers whose MLP has the parameter count
    closest to the CNN's (solves ``(L-1)h² + (C+L+1)h + 1 = budget`` for L layers, then rounds)."""
    budget = paper_cnn_parameters(in_channels, width)
    a, b, c = PIXEL_HIDDEN_LAYERS - 1, in_channels + PIXEL_HIDDEN_LAYERS + 1, 1 - budget
    h = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = {max(1, math.floor(h)), max(1, math.ceil(h))}
    return min(candidates, key=lambda k: abs(mlp_parameters(in_channels, (k,) * PIXEL_HIDDEN_LAYERS) - budget))


def build_model(model_cfg: ModelConfig, in_channels: int) -> nn.Module:
    """A fresh, randomly initialised model for ``model.kind`` "cnn" or "pixel"."""
    if model_cfg.kind == "cnn":
        return PaperCNN(in_channels, model_cfg.activation, model_cfg.width, model_cfg.dropout)
    if model_cfg.kind == "pixel":
        return PixelMLP(in_channels, model_cfg.activation, model_cfg.width, model_cfg.dropout)
    raise SmrayError(f"model.kind: {model_cfg.kind!r} is not a torch model "
                     "(the SVR baseline is smray.baselines.fit_svr)")


# --------------------------------------------------------------------------------------------
# Whole-image inference
# --------------------------------------------------------------------------------------------
def patchwise_forward(model: nn.Module, tb_image: np.ndarray | Tensor, centres: np.ndarray | None = None,
                      batch_size: int = 8192) -> np.ndarray:
    """Reference whole-image inference: cut every 9×9 window (or those whose top-left corner is
    True in ``centres``, shape ``(H-8, W-8)``) and run the model on batches of patches.
    ``tb_image``: ``(C, H, W)`` scaled TBs. Returns ``(H-8, W-8)`` float32, NaN where not computed."""
    device = _device(model)
    img = host_to_device(_as_image(tb_image), device)
    c, h, w = img.shape
    out = np.full((h - PATCH_SIZE + 1, w - PATCH_SIZE + 1), np.nan, dtype=np.float32)
    windows = img.unfold(1, PATCH_SIZE, 1).unfold(2, PATCH_SIZE, 1)  # (C, H-8, W-8, 9, 9), a view
    ii, jj = np.nonzero(centres) if centres is not None else np.nonzero(np.ones(out.shape, dtype=bool))
    with torch.no_grad():
        for s in range(0, len(ii), batch_size):
            bi = torch.as_tensor(ii[s:s + batch_size], device=device)
            bj = torch.as_tensor(jj[s:s + batch_size], device=device)
            patches = windows[:, bi, bj].permute(1, 0, 2, 3).contiguous()
            out[ii[s:s + batch_size], jj[s:s + batch_size]] = model(patches).float().cpu().numpy()
    return out


def fcn_forward(model: nn.Module, tb_image: np.ndarray | Tensor, valid: np.ndarray | None = None,
                band_rows: int = 16, chunk: int = 16384) -> np.ndarray:
    """Whole-image inference equal to the patch-wise model on every 9×9 window.

    Args:
        model: a :class:`PaperCNN` or :class:`PixelMLP` (put it in ``eval()`` mode first unless you
            want dropout active).
        tb_image: ``(C, H, W)`` scaled TBs (NaN allowed: windows touching a NaN give NaN, as the
            patch-wise model would).
        valid: optional bool ``(H-8, W-8)``: windows (by top-left corner) to compute; others are NaN.
            With a mask the dense part is conv 1 / conv 2 only, so it pays off when the mask is sparse
            (land on a global grid); without one every layer runs densely.
        band_rows: output rows per band (bounds memory: ~``(band_rows+8)·W·c2·4`` bytes per map).
        chunk: positions per matrix product in the masked tail.

    Returns:
        ``(H-8, W-8)`` float32; ``[i, j]`` is the output for the window centred on ``[i+4, j+4]``.
    """
    img = host_to_device(_as_image(tb_image), _device(model))
    if img.ndim != 3 or img.shape[1] < PATCH_SIZE or img.shape[2] < PATCH_SIZE:
        raise SmrayError(f"image input: expected (C, H>=9, W>=9), got {tuple(img.shape)}")
    c, h, w = img.shape
    oh, ow = h - PATCH_SIZE + 1, w - PATCH_SIZE + 1
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (oh, ow):
            raise SmrayError(f"valid mask: expected shape {(oh, ow)}, got {valid.shape}")
    out = np.full((oh, ow), np.nan, dtype=np.float32)
    if isinstance(model, PixelMLP):
        _pixel_image(model, img, valid, out, chunk)
        return out
    if not isinstance(model, PaperCNN):
        raise SmrayError(f"fcn_forward: unsupported model {type(model).__name__}")
    dense = model.as_fully_convolutional()
    with torch.no_grad():
        for r0 in range(0, oh, band_rows):
            r1 = min(oh, r0 + band_rows)
            band = img[None, :, r0:r1 + PATCH_SIZE - 1]
            if valid is None:
                out[r0:r1] = dense(band)[0].float().cpu().numpy()
            elif valid[r0:r1].any():
                _masked_band(model, band, valid[r0:r1], out[r0:r1], chunk)
    return out


def _device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any, e.g. all layers int8)."""
    return next(model.parameters(), torch.empty(0)).device


def _as_image(tb_image: np.ndarray | Tensor) -> Tensor:
    if isinstance(tb_image, Tensor):
        return tb_image.float()
    return torch.as_tensor(np.asarray(tb_image, dtype=np.float32))


def _pixel_image(model: PixelMLP, img: Tensor, valid: np.ndarray | None, out: np.ndarray, chunk: int) -> None:
    c, h, w = img.shape
    centre = img[:, CENTRE:h - CENTRE, CENTRE:w - CENTRE].reshape(c, -1).T  # (pixels, C)
    idx = np.flatnonzero(valid) if valid is not None else np.arange(centre.shape[0])
    flat = out.reshape(-1)
    with torch.no_grad():
        for s in range(0, len(idx), chunk):
            sel = idx[s:s + chunk]
            flat[sel] = model.forward_pixels(centre[torch.as_tensor(sel, device=img.device)]).float().cpu().numpy()


def _masked_band(m: PaperCNN, band: Tensor, valid: np.ndarray, out: np.ndarray, chunk: int) -> None:
    """One band: dense trunk and stride-1 pool 2, then conv 3 at the positions the valid windows read
    (``[i+2a, j+2b]``, a, b ∈ {0, 1}) and the fully connected layers at the valid windows."""
    device = band.device
    # NHWC: oneDNN's fast convolution kernels (on the CPU ~7x the NCHW trunk) and, viewed as
    # (rows, cols, c2), each position's channels one contiguous row for the conv-3 gathers
    band = band.contiguous(memory_format=torch.channels_last)
    pool = F.max_pool2d(m.trunk(band), kernel_size=2, stride=1)[0].permute(1, 2, 0)  # (rows+4, W-4, c2)
    ph, pw, c2 = pool.shape
    vi, vj = np.nonzero(valid)
    need = np.zeros((ph - 2, pw - 2), dtype=bool)  # conv-3 positions (dilated 2×2 fits: -2)
    for a in (0, 2):
        for b in (0, 2):
            need[vi + a, vj + b] = True
    ni, nj = np.nonzero(need)
    slot = np.full(need.shape, -1, dtype=np.int64)
    slot[ni, nj] = np.arange(len(ni))
    w3 = m.conv3.weight.reshape(m.conv3.out_channels, -1).T  # (c2·2·2, c3), rows in (c2, a, b) order
    conv3 = torch.empty(len(ni), m.conv3.out_channels, device=device)
    for s in range(0, len(ni), chunk):
        pi = torch.as_tensor(ni[s:s + chunk], device=device)
        pj = torch.as_tensor(nj[s:s + chunk], device=device)
        taps = torch.stack([pool[pi + a, pj + b] for a in (0, 2) for b in (0, 2)], dim=-1)  # (n, c2, 4)
        taps = _rows_padded(taps.reshape(len(pi), c2 * 4))
        conv3[s:s + chunk] = m.act3(torch.addmm(m.conv3.bias, taps, w3))[:len(pi)]
    for s in range(0, len(vi), chunk):
        bi, bj = vi[s:s + chunk], vj[s:s + chunk]
        rows = [torch.as_tensor(slot[bi + a, bj + b], device=device) for a in (0, 2) for b in (0, 2)]
        feats = torch.stack([conv3[r] for r in rows], dim=-1)  # (n, c3, 4): (channel, a, b) order
        out[bi, bj] = m.head(_rows_padded(feats.reshape(len(bi), -1)))[:len(bi)].float().cpu().numpy()


#: matrix products in the masked tail take a multiple of this many rows (see :func:`_rows_padded`)
ROW_BUCKET = 256


def _rows_padded(x: Tensor) -> Tensor:
    """``x`` (n, k) with its last row repeated up to a multiple of :data:`ROW_BUCKET` rows. The
    number of valid positions differs in every band of every day; oneDNN keeps a compiled kernel
    per matrix shape (up to 1,024 of them), so over a decade of days a predict worker's memory
    grew by ~0.6 GB. Bucketed shapes reuse a few dozen kernels. Repeating a real row (not zeros)
    keeps the per-batch range that dynamic int8 quantisation scales by."""
    pad = -x.shape[0] % ROW_BUCKET
    return torch.cat([x, x[-1:].expand(pad, -1)]) if pad and x.shape[0] else x
