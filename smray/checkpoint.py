"""Model checkpoints: weights-only, verified, never half-loaded.

A checkpoint is two objects beside each other:

* ``<name>.pt`` — ``torch.save`` of a dict holding only tensors, ints, floats, strings, lists and
  dicts: the model ``state_dict``, the optimiser ``state_dict`` (optional), the epoch, the best
  validation metric, the normalisation statistics and the config signature (both as JSON text).
* ``<name>.pt.json`` — the metadata as JSON (format, fingerprint, signature, model kind,
  in_channels, width, activation, epoch, best metric, normalisation statistics, parameter count)
  plus the size and SHA-256 of the ``.pt`` bytes.

The **fingerprint** is the SHA-256 of the model-relevant configuration (:func:`config_signature`:
the whole ``model`` section and ``patches.channels/passes/size/stack_passes``) in canonical JSON.

Loading reads the sidecar, checks the ``.pt`` bytes against its size and hash (a truncated or
corrupted file is refused before unpickling), unpickles with ``torch.load(weights_only=True)`` (a
file holding arbitrary Python objects is refused), checks the fingerprint against the expected
configuration, builds a fresh model and loads the weights with ``strict=True``; only a fully
loaded model is returned. Every refusal is one :class:`~smray.errors.SmrayError` line naming the
file. All I/O goes through :mod:`smray.storage`, so local paths, ``file://``, ``memory://`` and
``s3://`` work alike; each object is written whole (bytes in memory, then one ``write_bytes``).
Example::

    ckpt = make_checkpoint(model, cfg.model, cfg.patches, epoch=7, best_metric=0.0123,
                           norm_stats=stats.to_dict(), optimizer=opt)
    save_checkpoint("s3://bucket/run/model.pt", ckpt, storage=cfg.storage)
    model, ckpt = load_model("s3://bucket/run/model.pt", cfg.model, cfg.patches, storage=cfg.storage)
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
from dataclasses import dataclass, field
from typing import Any

import fsspec
import torch
from torch import nn

from smray.config import ModelConfig, PatchConfig, config_from_dict, to_dict
from smray.errors import SmrayError
from smray.models import build_model
from smray.serial import read_json
from smray.storage import StorageConfig, filesystem, join, read_bytes, resolve_storage, to_url, write_bytes

#: the files of a training run's directory (``smray train --out``): best weights, SVR, scaling, record
MODEL_FILE = "model.pt"
SVR_FILE = "svr.npz"
NORMALISATION_FILE = "normalisation.json"
TRAINING_FILE = "training.json"


FORMAT = "smray-checkpoint"
VERSION = 1
#: suffix of the JSON metadata object written beside the checkpoint
SIDECAR_SUFFIX = ".json"

#: a checkpoint location: a URL/path, or an fsspec filesystem and a path on it
Target = str | tuple[fsspec.AbstractFileSystem, str]


# --------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------
def config_signature(model_cfg: ModelConfig, patch_cfg: PatchConfig) -> dict[str, Any]:
    """The configuration a trained model depends on: the ``model`` section and the patch layout."""
    return {
        "model": to_dict(model_cfg),
        "patches": {"channels": list(patch_cfg.channels), "passes": list(patch_cfg.passes),
                    "size": int(patch_cfg.size), "stack_passes": bool(patch_cfg.stack_passes)},
    }


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def signature_fingerprint(signature: dict[str, Any]) -> str:
    """SHA-256 (hex) of a signature's canonical JSON."""
    return hashlib.sha256(_canonical(signature).encode()).hexdigest()


def config_fingerprint(model_cfg: ModelConfig, patch_cfg: PatchConfig) -> str:
    """SHA-256 (hex) of :func:`config_signature`."""
    return signature_fingerprint(config_signature(model_cfg, patch_cfg))


def describe_mismatch(trained: dict[str, Any], expected: dict[str, Any]) -> str:
    """``model trained for channels 06H,06V,10H,10V, cube has 06H,06V; …`` for the differing fields."""
    parts = []
    for section, label_of, has in (("patches", lambda k: k, "cube has"),
                                   ("model", lambda k: f"model.{k}", "config has")):
        a, b = trained.get(section, {}), expected.get(section, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                parts.append(f"model trained for {label_of(key)} {_show(a.get(key))}, {has} {_show(b.get(key))}")
    return "; ".join(parts) or "configuration fingerprints differ"


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


# --------------------------------------------------------------------------------------------
# The checkpoint
# --------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """Everything needed to rebuild a trained model or resume its training."""

    model_state: dict[str, torch.Tensor]  #: ``model.state_dict()``
    in_channels: int  #: model input channels C
    signature: dict[str, Any]  #: :func:`config_signature` of the run that trained it
    epoch: int = 0  #: epochs completed
    best_metric: float = math.nan  #: best validation loss so far (MSE, scaled units)
    norm_stats: dict[str, Any] | None = None  #: ``NormStats.to_dict()`` (JSON-serialisable)
    optimizer_state: dict[str, Any] | None = None  #: ``optimizer.state_dict()``
    extra: dict[str, Any] = field(default_factory=dict)  #: JSON-serialisable extras (e.g. history)

    @property
    def fingerprint(self) -> str:
        return signature_fingerprint(self.signature)

    @property
    def model_config(self) -> ModelConfig:
        return config_from_dict({"model": self.signature["model"]}).model

    def metadata(self) -> dict[str, Any]:
        """The JSON sidecar's content (without the hash of the ``.pt`` bytes)."""
        m = self.signature["model"]
        return {
            "format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint, "signature": self.signature,
            "kind": m["kind"], "in_channels": self.in_channels, "width": m["width"],
            "activation": m["activation"], "dropout": m["dropout"], "epoch": self.epoch,
            "best_metric": self.best_metric if math.isfinite(self.best_metric) else None,
            "n_parameters": int(sum(t.numel() for t in self.model_state.values())),
            "norm_stats": self.norm_stats, "extra": self.extra, "torch_version": torch.__version__,
        }


def make_checkpoint(model: nn.Module, model_cfg: ModelConfig, patch_cfg: PatchConfig, *, epoch: int,
                    best_metric: float = math.nan, norm_stats: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, Any] | None = None) -> Checkpoint:
    """A :class:`Checkpoint` of ``model`` (tensors copied to CPU) trained under ``model_cfg``/``patch_cfg``."""
    in_channels = int(getattr(model, "in_channels"))
    return Checkpoint(
        model_state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        in_channels=in_channels, signature=config_signature(model_cfg, patch_cfg), epoch=int(epoch),
        best_metric=float(best_metric), norm_stats=norm_stats,
        optimizer_state=optimizer.state_dict() if optimizer is not None else None, extra=dict(extra or {}))


def _resolve(target: Target, storage: Any = None) -> tuple[fsspec.AbstractFileSystem, str, str]:
    if isinstance(target, tuple):
        fs, path = target
        return fs, path, to_url(fs, path)
    fs, path = filesystem(target, storage)
    return fs, path, target


def save_checkpoint(target: Target, ckpt: Checkpoint | dict[str, Any], *, storage: Any = None) -> str:
    """Write ``ckpt`` to ``target`` (``….pt``) and its sidecar ``….pt.json``; returns the URL.

    ``ckpt``: a :class:`Checkpoint` or a dict of its fields. ``storage``: the
    :class:`~smray.storage.StorageConfig` for ``s3://`` URLs. The ``.pt`` is written first, then the
    sidecar carrying its hash, so an interrupted save is detected on load."""
    fs, path, url = _resolve(target, storage)
    if isinstance(ckpt, dict):
        try:
            ckpt = Checkpoint(**ckpt)
        except TypeError as err:
            raise SmrayError(f"{url}: invalid checkpoint state ({err})") from None
    try:
        norm_json = json.dumps(ckpt.norm_stats)
        extra_json = json.dumps(ckpt.extra)
    except (TypeError, ValueError) as err:
        raise SmrayError(f"{url}: checkpoint metadata is not JSON-serialisable ({err})") from None
    payload: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "model_state": {k: v.detach().to("cpu") for k, v in ckpt.model_state.items()},
        "optimizer_state": ckpt.optimizer_state, "epoch": int(ckpt.epoch), "best_metric": float(ckpt.best_metric),
        "in_channels": int(ckpt.in_channels), "signature_json": _canonical(ckpt.signature),
        "norm_stats_json": norm_json, "extra_json": extra_json,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    meta = ckpt.metadata()
    meta["pt_size"] = len(data)
    meta["pt_sha256"] = hashlib.sha256(data).hexdigest()
    write_bytes(fs, path, data)
    write_bytes(fs, path + SIDECAR_SUFFIX, json.dumps(meta, indent=1).encode())
    return url


def read_metadata(target: Target, *, storage: Any = None) -> dict[str, Any]:
    """The sidecar of a checkpoint (cheap: does not read the weights)."""
    fs, path, url = _resolve(target, storage)
    return _read_sidecar(fs, path, url)


def _read_sidecar(fs: fsspec.AbstractFileSystem, path: str, url: str) -> dict[str, Any]:
    side = url + SIDECAR_SUFFIX
    try:
        raw = read_bytes(fs, path + SIDECAR_SUFFIX)
    except FileNotFoundError:
        raise SmrayError(f"{side}: checkpoint metadata not found (is {url} a smray checkpoint?)") from None
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SmrayError(f"{side}: checkpoint metadata is not valid JSON (corrupt or truncated)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SmrayError(f"{side}: not a smray checkpoint sidecar (format {FORMAT!r} expected)")
    if meta.get("version") != VERSION:
        raise SmrayError(f"{side}: checkpoint version {meta.get('version')!r} is not supported (expected {VERSION})")
    for key, tp in (("pt_size", int), ("pt_sha256", str), ("fingerprint", str), ("signature", dict)):
        if not isinstance(meta.get(key), tp):
            raise SmrayError(f"{side}: checkpoint metadata lacks {key!r}")
    return meta


def load_checkpoint(target: Target, model_cfg: ModelConfig | None = None, patch_cfg: PatchConfig | None = None,
                    *, storage: Any = None) -> Checkpoint:
    """Read and verify a checkpoint. With ``model_cfg`` and ``patch_cfg``, refuse one whose
    fingerprint differs from theirs (message lists the differing fields)."""
    fs, path, url = _resolve(target, storage)
    return _load_checkpoint(fs, path, url, model_cfg, patch_cfg)


def _load_checkpoint(fs: fsspec.AbstractFileSystem, path: str, url: str, model_cfg: ModelConfig | None,
                     patch_cfg: PatchConfig | None) -> Checkpoint:
    meta = _read_sidecar(fs, path, url)
    try:
        data = read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: checkpoint not found") from None
    if len(data) != meta["pt_size"]:
        raise SmrayError(f"{url}: checkpoint is truncated or corrupt ({len(data)} bytes, "
                         f"{meta['pt_size']} recorded in the sidecar)")
    if hashlib.sha256(data).hexdigest() != meta["pt_sha256"]:
        raise SmrayError(f"{url}: checkpoint is corrupt (SHA-256 differs from the one recorded in the sidecar)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        why = _unpickler_reason(str(err))
        raise SmrayError(f"{url}: refusing to load: not a weights-only checkpoint ({why})") from None
    except Exception as err:  # zip/pickle errors of a damaged file have no common base
        raise SmrayError(f"{url}: checkpoint is corrupt or not a torch file ({type(err).__name__})") from None
    ckpt = _from_payload(payload, url)
    if ckpt.fingerprint != meta["fingerprint"]:
        raise SmrayError(f"{url}: checkpoint and its sidecar disagree on the configuration fingerprint")
    if model_cfg is not None or patch_cfg is not None:
        if model_cfg is None or patch_cfg is None:
            raise SmrayError(f"{url}: checking the fingerprint needs both model_cfg and patch_cfg")
        expected = config_signature(model_cfg, patch_cfg)
        if signature_fingerprint(expected) != ckpt.fingerprint:
            raise SmrayError(f"{url}: {describe_mismatch(ckpt.signature, expected)}")
    return ckpt


def _unpickler_reason(text: str) -> str:
    """The informative line of torch's weights-only refusal (``Unsupported global: GLOBAL x.y …``)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0][:160]
    return "unpickling refused"


def _from_payload(payload: Any, url: str) -> Checkpoint:
    def bad(what: str) -> SmrayError:
        return SmrayError(f"{url}: not a smray checkpoint ({what})")

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise bad(f"format {FORMAT!r} expected")
    if payload.get("version") != VERSION:
        raise bad(f"version {payload.get('version')!r}, expected {VERSION}")
    state = payload.get("model_state")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise bad("model_state is not a mapping of tensors")
    for key, tp in (("epoch", int), ("best_metric", float), ("in_channels", int), ("signature_json", str),
                    ("norm_stats_json", str), ("extra_json", str)):
        if not isinstance(payload.get(key), tp):
            raise bad(f"{key} missing or of the wrong type")
    opt = payload.get("optimizer_state")
    if opt is not None and not isinstance(opt, dict):
        raise bad("optimizer_state is not a mapping")
    try:
        signature = json.loads(payload["signature_json"])
        norm_stats = json.loads(payload["norm_stats_json"])
        extra = json.loads(payload["extra_json"])
    except json.JSONDecodeError:
        raise bad("embedded JSON is invalid") from None
    if not isinstance(signature, dict) or not isinstance(signature.get("model"), dict):
        raise bad("signature lacks the model section")
    return Checkpoint(model_state=state, in_channels=payload["in_channels"], signature=signature,
                      epoch=payload["epoch"], best_metric=payload["best_metric"], norm_stats=norm_stats,
                      optimizer_state=opt, extra=extra)


def model_from_checkpoint(ckpt: Checkpoint, where: str = "checkpoint") -> nn.Module:
    """A fresh model built from the checkpoint's own model config, weights loaded with
    ``strict=True``, in ``eval()`` mode. Raises SmrayError (naming ``where``) on any mismatch."""
    try:
        model_cfg = ckpt.model_config
    except SmrayError as err:
        raise SmrayError(f"{where}: invalid model configuration ({err})") from None
    model = build_model(model_cfg, ckpt.in_channels)
    try:
        model.load_state_dict(ckpt.model_state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise SmrayError(f"{where}: weights do not fit a {model_cfg.kind} model with "
                         f"{ckpt.in_channels} input channels ({first[0][:160] if first else 'state_dict mismatch'}"
                         f"{'; ' + first[1].strip()[:160] if len(first) > 1 else ''})") from None
    return model.eval()


def load_model(target: Target, model_cfg: ModelConfig | None = None, patch_cfg: PatchConfig | None = None,
               *, storage: Any = None) -> tuple[nn.Module, Checkpoint]:
    """(model in eval mode, checkpoint): :func:`load_checkpoint` then :func:`model_from_checkpoint`."""
    fs, path, url = _resolve(target, storage)
    ckpt = _load_checkpoint(fs, path, url, model_cfg, patch_cfg)
    return model_from_checkpoint(ckpt, url), ckpt


def restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: Checkpoint, where: str = "checkpoint") -> None:
    """Load the checkpoint's optimiser state into ``optimizer`` (SmrayError when absent or incompatible)."""
    if ckpt.optimizer_state is None:
        raise SmrayError(f"{where}: checkpoint holds no optimiser state")
    try:
        optimizer.load_state_dict(ckpt.optimizer_state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise SmrayError(f"{where}: optimiser state does not fit ({err})") from None


def read_training_json(out_url: str, storage: StorageConfig | None = None) -> dict[str, Any]:
    """The ``training.json`` of a run (SmrayError when absent or invalid)."""
    url = join(out_url, TRAINING_FILE)
    try:
        return read_json(url, resolve_storage(storage))
    except FileNotFoundError:
        raise SmrayError(f"{url}: not found (has the training run finished?)") from None
