"""Checkpoints: round trip over every storage backend, corrupt/truncated/foreign files refused in one
line, fingerprint mismatches explained, weights-only unpickling, never a half-loaded model."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
import torch

from smray.checkpoint import (SIDECAR_SUFFIX, config_fingerprint, load_checkpoint, load_model, make_checkpoint,
                              read_metadata, restore_optimizer, save_checkpoint)
from smray.config import ModelConfig, PatchConfig
from smray.errors import SmrayError
from smray.models import PaperCNN, PixelMLP, build_model
from smray.storage import filesystem, join, read_bytes, write_bytes

NORM = {"channels": ["06H", "06V", "10H", "10V"], "lower": [150.0, 200.0, 155.0, 205.0],
        "upper": [300.0, 310.0, 302.0, 311.0], "target": [0.0, 0.6]}


def _trained(model_cfg: ModelConfig, channels: int = 4) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(1)
    model = build_model(model_cfg, channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model(torch.rand(8, channels, 9, 9)).square().mean()
    loss.backward()
    opt.step()
    return model, opt


def _saved(root: str, model_cfg: ModelConfig | None = None, patch_cfg: PatchConfig | None = None):
    model_cfg = model_cfg or ModelConfig(width=0.25)
    patch_cfg = patch_cfg or PatchConfig()
    model, opt = _trained(model_cfg, 8 if patch_cfg.stack_passes else 4)
    ckpt = make_checkpoint(model, model_cfg, patch_cfg, epoch=3, best_metric=0.0123, norm_stats=NORM, optimizer=opt,
                           extra={"history": [{"epoch": 0, "val_loss": 0.02}]})
    url = join(root, "run", "model.pt")
    assert save_checkpoint(url, ckpt) == url
    return url, model, opt, model_cfg, patch_cfg


def _assert_one_line_naming(err: pytest.ExceptionInfo, url: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and url in msg, msg


def _rewrite(url: str, data: bytes, *, fix_sidecar: bool = False) -> None:
    """Replace the .pt bytes; with ``fix_sidecar`` also update the recorded size and hash, as an
    attacker (or a bug) writing both files would."""
    fs, path = filesystem(url)
    write_bytes(fs, path, data)
    if fix_sidecar:
        meta = json.loads(read_bytes(fs, path + SIDECAR_SUFFIX))
        meta["pt_size"], meta["pt_sha256"] = len(data), hashlib.sha256(data).hexdigest()
        write_bytes(fs, path + SIDECAR_SUFFIX, json.dumps(meta).encode())


def _pt_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return read_bytes(fs, path)


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _assert_refused(url: str, data: bytes, match: str, *, load=load_model, fix_sidecar: bool = False) -> None:
    """With the .pt bytes replaced by ``data``, ``load(url)`` is refused in one line naming the file."""
    _rewrite(url, data, fix_sidecar=fix_sidecar)
    with pytest.raises(SmrayError, match=match) as err:
        load(url)
    _assert_one_line_naming(err, url)


@pytest.mark.parametrize("kind", ["cnn", "pixel"])
def test_round_trip(storage_root, kind):
    model_cfg = ModelConfig(kind=kind, width=0.25, activation="tanh", dropout=0.1)
    url, model, opt, model_cfg, patch_cfg = _saved(storage_root, model_cfg)
    loaded, ckpt = load_model(url, model_cfg, patch_cfg)
    assert type(loaded) is type(model) and not loaded.training
    x = torch.rand(6, 4, 9, 9)
    assert torch.equal(loaded(x), model.eval()(x))
    assert ckpt.epoch == 3 and ckpt.best_metric == 0.0123 and ckpt.norm_stats == NORM
    assert ckpt.extra["history"][0]["val_loss"] == 0.02
    assert ckpt.fingerprint == config_fingerprint(model_cfg, patch_cfg)
    fresh = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    restore_optimizer(fresh, ckpt)
    assert fresh.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    meta = read_metadata(url)
    assert meta["kind"] == kind and meta["in_channels"] == 4 and meta["width"] == 0.25
    assert meta["activation"] == "tanh" and meta["epoch"] == 3 and meta["norm_stats"] == NORM
    assert meta["fingerprint"] == ckpt.fingerprint


def test_stacked_passes_round_trip(tmp_path):
    patch_cfg = PatchConfig(stack_passes=True)
    url, model, _, model_cfg, _ = _saved(str(tmp_path), patch_cfg=patch_cfg)
    loaded, ckpt = load_model(url, model_cfg, patch_cfg)
    assert isinstance(loaded, PaperCNN) and loaded.in_channels == 8 and ckpt.in_channels == 8


def test_local_write_leaves_no_temporary_files(tmp_path):
    _saved(str(tmp_path))
    assert sorted(os.listdir(tmp_path / "run")) == ["model.pt", "model.pt.json"]


def test_truncated_file_is_refused(storage_root):
    url, *_ = _saved(storage_root)
    data = _pt_bytes(url)
    _assert_refused(url, data[: len(data) // 2], "truncated")
    # the same truncation with a sidecar that agrees: torch itself cannot read it
    _assert_refused(url, data[: len(data) // 2], "corrupt", fix_sidecar=True)


def test_flipped_byte_is_refused(tmp_path):
    url, *_ = _saved(str(tmp_path))
    data = bytearray(_pt_bytes(url))
    data[len(data) // 2] ^= 0xFF
    _assert_refused(url, bytes(data), "corrupt", load=load_checkpoint)


def test_missing_or_broken_sidecar_is_refused(tmp_path):
    url, *_ = _saved(str(tmp_path))
    fs, path = filesystem(url)
    write_bytes(fs, path + SIDECAR_SUFFIX, b'{"format": "smray-checkp')
    with pytest.raises(SmrayError, match="not valid JSON") as err:
        load_model(url)
    _assert_one_line_naming(err, url)
    fs.rm(path + SIDECAR_SUFFIX)
    with pytest.raises(SmrayError, match="metadata not found") as err:
        load_model(url)
    _assert_one_line_naming(err, url)
    with pytest.raises(SmrayError, match="not found"):
        load_model(join(str(tmp_path), "nothing.pt"))


def test_fingerprint_mismatch_is_explained(storage_root):
    url, *_ = _saved(storage_root)
    with pytest.raises(SmrayError) as err:
        load_model(url, ModelConfig(width=0.25), PatchConfig(channels=("06H", "06V")))
    _assert_one_line_naming(err, url)
    assert "model trained for channels 06H,06V,10H,10V, cube has 06H,06V" in str(err.value)
    with pytest.raises(SmrayError, match=r"model trained for model.width 0.25, config has 1.0"):
        load_checkpoint(url, ModelConfig(), PatchConfig())
    with pytest.raises(SmrayError, match="stack_passes False, cube has True"):
        load_checkpoint(url, ModelConfig(width=0.25), PatchConfig(stack_passes=True))


class Payload:
    """An arbitrary object: unpickling it would call :func:`_record` (it must never run)."""

    calls: list[str] = []

    def __reduce__(self):
        return (_record, ("unpickled",))


def _record(what: str) -> str:
    Payload.calls.append(what)
    return what


def test_arbitrary_pickled_object_is_refused(tmp_path):
    url, *_ = _saved(str(tmp_path))
    payload = torch.load(io.BytesIO(_pt_bytes(url)), weights_only=True)
    payload["extra_json"] = Payload()
    _assert_refused(url, _torch_bytes(payload), "not a weights-only checkpoint", fix_sidecar=True)
    assert Payload.calls == []


def test_never_half_loaded(tmp_path):
    """A state_dict that does not fit the model (a missing tensor, a wrong shape) is refused; no model
    with partly loaded weights is ever returned."""
    url, *_ = _saved(str(tmp_path))
    payload = torch.load(io.BytesIO(_pt_bytes(url)), weights_only=True)
    del payload["model_state"]["fc2.bias"]
    _assert_refused(url, _torch_bytes(payload), "weights do not fit", fix_sidecar=True)
    payload["model_state"]["fc2.bias"] = torch.zeros(2)
    _assert_refused(url, _torch_bytes(payload), "weights do not fit", fix_sidecar=True)


def test_not_a_checkpoint(tmp_path):
    url = str(tmp_path / "other.pt")
    fs, path = filesystem(url)
    write_bytes(fs, path, _torch_bytes({"weights": torch.zeros(3)}))
    with pytest.raises(SmrayError, match="metadata not found"):
        load_model(url)


def test_pixel_checkpoint_does_not_load_as_cnn(tmp_path):
    url, *_ = _saved(str(tmp_path), ModelConfig(kind="pixel", width=0.25))
    loaded, _ = load_model(url)
    assert isinstance(loaded, PixelMLP)
    with pytest.raises(SmrayError, match="model trained for model.kind pixel, config has cnn"):
        load_model(url, ModelConfig(kind="cnn", width=0.25), PatchConfig())


def test_state_as_plain_dict(tmp_path):
    model, _ = _trained(ModelConfig(width=0.25))
    state = {"model_state": model.state_dict(), "in_channels": 4,
             "signature": {"model": {"kind": "cnn", "activation": "relu", "width": 0.25, "dropout": 0.0,
                                     "pass_specific": False},
                           "patches": {"channels": ["06H", "06V", "10H", "10V"], "passes": ["A", "D"], "size": 9,
                                       "stack_passes": False}},
             "epoch": 1, "best_metric": 0.5, "norm_stats": NORM}
    url = save_checkpoint(str(tmp_path / "m.pt"), state)
    loaded, ckpt = load_model(url, ModelConfig(width=0.25), PatchConfig())
    assert ckpt.epoch == 1 and ckpt.optimizer_state is None
    with pytest.raises(SmrayError, match="invalid checkpoint state"):
        save_checkpoint(str(tmp_path / "n.pt"), {"weights": 1})
