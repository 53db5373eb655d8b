"""One config tree: YAML ↔ frozen dataclasses, validated on load.

Every section is a frozen dataclass whose fields are documented where they are declared. Loading
checks every key: an unknown key, a wrong type or a missing required value raises
:class:`~smray.errors.SmrayError` with one line naming the field (``synth.days: expected an
integer, got 'ten'``). Secrets (S3 keys) are never written back by :func:`dump_config` and are
hidden from ``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import types
import typing
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from smray.errors import SmrayError
from smray.grid import check_bbox, check_resolution
from smray.storage import SECRET, S3Config, StorageConfig  # noqa: F401 - storage owns its settings

#: the archive layouts the twin writes (smray.synth.layouts)
TB_LAYOUTS = ("jaxa_l3", "nsidc_0302", "nsidc_0301", "nsidc_ae_land3", "nsidc_ae_l2a")
#: the NSIDC flat-binary layouts (NSIDC-0302 / NSIDC-0301), the ones NSIDC delivers as .gz
FLAT_TB_LAYOUTS = ("nsidc_0302", "nsidc_0301")


@dataclass(frozen=True)
class GridConfig:
    """The model grid: a resolution in degrees and an optional regional window."""

    res: float = 0.25  #: grid spacing, degrees; must divide 180 (0.25 is the product grid)
    bbox: tuple[float, float, float, float] | None = None  #: (west, south, east, north) degrees, or global

    def __post_init__(self) -> None:
        check_resolution(self.res)
        if self.bbox is not None:
            check_bbox(self.bbox)

    def grid(self):  # -> smray.grid.Grid
        from smray.grid import Grid

        g = Grid(self.res)
        return g.subset(self.bbox) if self.bbox is not None else g


@dataclass(frozen=True)
class SynthConfig:
    """The AMSR-E / ERA-Interim twin (see docs/twin.md)."""

    start: dt.date = dt.date(2011, 7, 1)  #: first day written (the archive goes to ``paths.twin``)
    days: int = 35  #: number of days written
    seed: int = 0  #: random seed; the twin is deterministic for (seed, grid, start, days)
    spinup_days: int = 60  #: days the soil-moisture model runs before ``start`` (not written)
    overwrite: bool = False  #: allow writing into a non-empty archive root
    max_in_flight: int = 3  #: days being rendered/written at once (bounds memory)
    sensor: str = "AMSR-E"  #: sensor name written into the file attributes
    #: TB file layout: jaxa_l3 (JAXA L3 HDF5), nsidc_0302 (quarter-degree flat), nsidc_0301 (EASE-Grid flat),
    #: nsidc_ae_land3 (AE_Land3 HDF4, land only: ocean and lakes filled), nsidc_ae_l2a (AE_L2A half-orbit swaths)
    tb_layout: str = "jaxa_l3"
    #: nsidc_0302 / nsidc_0301: write each file gzip-compressed with ``.gz`` added, as NSIDC delivers
    #: them (a regional twin's global files are then mostly zeros and small)
    gzip: bool = False

    def __post_init__(self) -> None:
        if self.gzip and self.tb_layout not in FLAT_TB_LAYOUTS:
            raise SmrayError(f"synth.gzip: only the NSIDC flat layouts ({', '.join(FLAT_TB_LAYOUTS)}) are "
                             f"delivered as .gz, not {self.tb_layout}")
        if self.days < 1:
            raise SmrayError(f"synth.days: must be >= 1, got {self.days}")
        if self.spinup_days < 0:
            raise SmrayError(f"synth.spinup_days: must be >= 0, got {self.spinup_days}")
        if self.max_in_flight < 1:
            raise SmrayError(f"synth.max_in_flight: must be >= 1, got {self.max_in_flight}")
        if self.tb_layout not in TB_LAYOUTS:
            raise SmrayError(f"synth.tb_layout: {self.tb_layout!r} is not one of {', '.join(TB_LAYOUTS)}")


@dataclass(frozen=True)
class RayConfig:
    """How smray connects to Ray."""

    address: str | None = None  #: None/"local": start a local runtime; "auto" or ray://… to join a cluster
    num_cpus: int | None = None  #: logical CPUs of a local runtime (None: the machine's cores)
    #: how long a stage waits for an autoscaling cluster to bring the CPUs/GPUs it asked for
    resource_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        if not self.resource_timeout_s > 0:
            raise SmrayError(f"ray.resource_timeout_s: must be > 0, got {self.resource_timeout_s}")


WATER_FILL = ("land_only", "always", "never")  #: qc.water_fill choices


@dataclass(frozen=True)
class QCConfig:
    """Per-day screening and compositing of brightness temperatures (smray.preprocess)."""

    tb_min_k: float = 50.0  #: TBs below this are physically impossible for 6.9/10.7 GHz → screened
    tb_max_k: float = 330.0  #: TBs above this are physically impossible → screened
    rfi_flag_k: float = 5.0  #: RFI index TB(6.9) − TB(10.7) above this (H or V) → rfi_suspect
    rfi_strong_k: float = 10.0  #: RFI index above this → rfi_strong
    frozen_soil_k: float = 273.15  #: reference soil temperature (stl1) below this → frozen_or_snow
    cold_tb10v_k: float = 250.0  #: without a soil temperature: land TB(10.7 V) below this → frozen_or_snow
    land_fraction_min: float = 0.5  #: land fraction below this → open_water
    coastal_land_fraction: float = 0.95  #: land fraction below this → coastal
    composite_days: int = 2  #: days registered per pass: 1 (the day only) or 2 (fill gaps from the day before)
    block: tuple[str, ...] = ("no_observation", "tb_out_of_range", "rfi_strong", "frozen_or_snow",
                              "open_water", "reference_missing", "day_missing")  #: flags that exclude a pixel
    #: coastal rule (smray.preprocess.fill_water): cells without a TB and below coastal_land_fraction take
    #: the nearest observed land cell's TBs, flagged water_filled (context only, they stay no_observation):
    #: "land_only" (for land-only products, AE_Land3), "always", "never"
    water_fill: str = "land_only"
    water_fill_cells: float = 6.0  #: farthest nearest-land cell a water cell is filled from, in cells

    def __post_init__(self) -> None:
        from smray.qc import FLAGS

        if self.composite_days not in (1, 2):
            raise SmrayError(f"qc.composite_days: must be 1 or 2, got {self.composite_days}")
        for name in self.block:
            if name not in FLAGS:
                raise SmrayError(f"qc.block: unknown flag {name!r} (known: {', '.join(FLAGS)})")
        if not self.tb_min_k < self.tb_max_k:
            raise SmrayError("qc.tb_min_k: must be below qc.tb_max_k")
        if self.water_fill not in WATER_FILL:
            raise SmrayError(f"qc.water_fill: must be one of {', '.join(WATER_FILL)}, got {self.water_fill!r}")
        if not self.water_fill_cells >= 0:
            raise SmrayError(f"qc.water_fill_cells: must be >= 0, got {self.water_fill_cells}")


def check_custom_resources(resources: dict[str, float], where: str) -> None:
    """Custom Ray resources: names other than CPU/GPU/memory (those have their own settings), amounts > 0."""
    for name, amount in resources.items():
        if name in ("CPU", "GPU", "memory", "object_store_memory"):
            raise SmrayError(f"{where}.{name}: set CPUs/GPUs with their own settings, not as a custom resource")
        if not amount > 0:
            raise SmrayError(f"{where}.{name}: must be > 0, got {amount}")


@dataclass(frozen=True)
class IngestConfig:
    """Archive → analysis-ready cube (smray.ingest); the archives, the cube and the days are in ``paths``."""

    tb_pattern: str | None = None  #: regex overriding the TB product's file-name pattern
    ref_pattern: str | None = None  #: regex overriding the reference file-name pattern
    task_cpus: float = 1.0  #: CPUs reserved per day task
    max_concurrency: int | None = None  #: day tasks at once (None: as many as CPUs allow)
    #: custom Ray resources each day task needs, e.g. {ingest: 1} to keep ingest on the CPU worker type
    task_resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_cpus <= 0:
            raise SmrayError(f"ingest.task_cpus: must be > 0, got {self.task_cpus}")
        check_custom_resources(self.task_resources, "ingest.task_resources")


@dataclass(frozen=True)
class NormConfig:
    """[0, 1] scaling of inputs and target (smray.normalise), fitted on the training period only."""

    lower_percentile: float = 0.0  #: percentile mapped to 0 (0 = minimum)
    upper_percentile: float = 100.0  #: percentile mapped to 1 (100 = maximum)

    def __post_init__(self) -> None:
        if not 0.0 <= self.lower_percentile < self.upper_percentile <= 100.0:
            raise SmrayError("normalise.lower_percentile: need 0 <= lower < upper <= 100")


@dataclass(frozen=True)
class PatchConfig:
    """9×9×C patches and their targets, cut lazily per day (smray.patches)."""

    size: int = 9  #: patch edge in cells (odd)
    channels: tuple[str, ...] = ("06H", "06V", "10H", "10V")  #: cube channels used as input
    passes: tuple[str, ...] = ("A", "D")  #: passes sampled (each pass a separate sample)
    stack_passes: bool = False  #: both passes as one 2×C-channel input instead of separate samples
    per_day: int = 35000  #: patches drawn per day (the paper: 35,000)
    train_per_day: int = 30000  #: of which training (the paper: 30,000)
    val_per_day: int = 5000  #: of which validation (the paper: 5,000)
    split: str = "blocked"  #: "blocked" (default: held-out spatial blocks and days) or "random" (the paper's, leaky)
    #: blocked split: block edge, degrees (0: 5°, or two patch widths where the grid is coarser, so that
    #: whole patch windows fit inside blocks)
    block_deg: float = 0.0
    val_block_fraction: float = 0.2  #: blocked split: share of blocks held out for validation
    val_day_every: int = 5  #: blocked split: every k-th day is a validation day (0: none)
    seed: int = 0  #: sampling seed (patches are deterministic for (seed, day))

    def __post_init__(self) -> None:
        if self.size < 1 or self.size % 2 == 0:
            raise SmrayError(f"patches.size: must be a positive odd number, got {self.size}")
        if self.split not in ("random", "blocked"):
            raise SmrayError(f"patches.split: must be 'random' or 'blocked', got {self.split!r}")
        if self.train_per_day + self.val_per_day > self.per_day:
            raise SmrayError("patches.per_day: must be at least train_per_day + val_per_day")
        if self.block_deg < 0:
            raise SmrayError(f"patches.block_deg: must be > 0, or 0 for the default, got {self.block_deg}")
        if self.split == "blocked" and not 0.0 < self.val_block_fraction < 1.0:
            raise SmrayError("patches.val_block_fraction: the blocked split needs 0 < val_block_fraction < 1")
        if self.val_day_every < 0:
            raise SmrayError(f"patches.val_day_every: must be 0 (no held-out days) or more, got {self.val_day_every}")
        known = {"06H", "06V", "10H", "10V"}
        for ch in self.channels:
            if ch not in known:
                raise SmrayError(f"patches.channels: unknown channel {ch!r} (known: {', '.join(sorted(known))})")
        for p in self.passes:
            if p not in ("A", "D"):
                raise SmrayError(f"patches.passes: unknown pass {p!r} (A or D)")


def validation_label(patches: PatchConfig | Mapping[str, Any]) -> str:
    """One line saying where a model's validation patches (early stopping, model selection) came from,
    for records and reports. ``patches`` is a :class:`PatchConfig` or its recorded dict (a record
    without ``split`` predates the blocked default: random)."""
    get = patches.get if isinstance(patches, Mapping) else (lambda k, d=None: getattr(patches, k, d))
    if get("split", "random") != "blocked":
        return ("random split (the paper's protocol): validation patches are drawn from the training days and "
                "places, so validation scores are optimistic")
    every = int(get("val_day_every", 0) or 0)
    days = f" and one day in {every} held out whole" if every else ""
    edge = float(get("block_deg", 0.0) or 0.0)
    size = f"{edge:g}°" if edge > 0 else "5°, or two patch widths on coarser grids"
    return (f"blocked split: validation on held-out blocks ({size}; {float(get('val_block_fraction', 0.2)):g} of the "
            f"land blocks){days}; no validation pixel shares a place and day with training")


@dataclass(frozen=True)
class ModelConfig:
    """The retrieval model (smray.models)."""

    kind: str = "cnn"  #: "cnn" (the paper's), "pixel" (centre pixel only, same budget), "svr" (scikit-learn RBF)
    activation: str = "relu"  #: "relu", "tanh" or "sigmoid" (the paper does not name one)
    width: float = 1.0  #: filter/unit multiplier for larger CNNs (1.0 = the paper's 20/100/200/500)
    dropout: float = 0.0  #: dropout before the last layer (also used for MC-dropout uncertainty)
    pass_specific: bool = False  #: one model per pass instead of one for both

    def __post_init__(self) -> None:
        if self.kind not in ("cnn", "pixel", "svr"):
            raise SmrayError(f"model.kind: must be cnn, pixel or svr, got {self.kind!r}")
        if self.activation not in ("relu", "tanh", "sigmoid"):
            raise SmrayError(f"model.activation: must be relu, tanh or sigmoid, got {self.activation!r}")
        if self.width <= 0:
            raise SmrayError(f"model.width: must be > 0, got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise SmrayError(f"model.dropout: must be in [0, 1), got {self.dropout}")


#: the SVR's input features (smray.baselines.svr_features)
SVR_FEATURES = ("patch", "centre", "centre+mean3x3")


def svr_values(value: float | tuple[float, ...]) -> tuple[float, ...]:
    """A train.svr_c / svr_epsilon / svr_gamma_factor setting as a tuple (one value or a list)."""
    return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),)


@dataclass(frozen=True)
class TrainConfig:
    """Training (smray.train): optimiser, schedule, Ray Train workers, checkpoints, SVR size."""

    optimizer: str = "adam"  #: "adam" or "sgd"
    lr: float = 1e-3  #: learning rate
    weight_decay: float = 0.0  #: L2 penalty
    momentum: float = 0.9  #: SGD momentum
    batch_size: int = 256  #: per worker
    epochs: int = 30  #: maximum epochs
    patience: int = 5  #: early stopping: epochs without validation improvement (0 = off)
    workers: int = 1  #: Ray Train data-parallel workers
    use_gpu: bool | None = None  #: None: GPUs when the cluster has them
    cpus_per_worker: float = 1.0  #: CPUs reserved per worker (fractional allowed)
    max_failures: int = 2  #: worker failures retried from the latest checkpoint
    seed: int = 0  #: torch/numpy seed (deterministic on one worker)
    svr_max_samples: int = 20000  #: SVR fits on a subsample of this size (its cost is quadratic)
    #: SVR inputs (smray.baselines.FEATURES): "patch" (the flattened size×size×C patch), "centre" (the
    #: centre pixel's C values) or "centre+mean3x3"
    svr_features: str = "patch"
    #: SVR C, ε (normalised target units) and γ as a multiple of scikit-learn's "scale" (1 / (F·var X)):
    #: one value each, or lists; with more than one combination each is fitted on svr_search_samples
    #: training samples and scored on as many validation patches, and the best is refitted on svr_max_samples
    svr_c: float | tuple[float, ...] = (1.0, 10.0)
    svr_epsilon: float | tuple[float, ...] = (0.01, 0.03)
    svr_gamma_factor: float | tuple[float, ...] = 1.0
    svr_search_samples: int = 4000  #: samples of each grid point's fit (and validation patches scoring it)
    #: "fp32", or "bf16": forward passes under bf16 autocast (AMP; weights, optimiser and loss sums fp32)
    precision: str = "fp32"
    #: order in which an epoch reads the training days: "shuffled" (a new seeded random order every
    #: epoch) or "calendar" (first to last day, every epoch)
    day_order: str = "shuffled"
    shuffle_buffer: int = 8192  #: rows each worker mixes across days (local shuffle buffer; 0 = none)

    def __post_init__(self) -> None:
        if self.day_order not in ("shuffled", "calendar"):
            raise SmrayError(f"train.day_order: must be shuffled or calendar, got {self.day_order!r}")
        if self.shuffle_buffer < 0:
            raise SmrayError(f"train.shuffle_buffer: must be >= 0, got {self.shuffle_buffer}")
        if self.optimizer not in ("adam", "sgd"):
            raise SmrayError(f"train.optimizer: must be adam or sgd, got {self.optimizer!r}")
        if self.precision not in ("fp32", "bf16"):
            raise SmrayError(f"train.precision: must be fp32 or bf16, got {self.precision!r}")
        for name in ("lr", "batch_size", "epochs", "workers", "cpus_per_worker", "svr_max_samples",
                     "svr_search_samples"):
            if getattr(self, name) <= 0:
                raise SmrayError(f"train.{name}: must be > 0, got {getattr(self, name)}")
        if self.svr_features not in SVR_FEATURES:
            raise SmrayError(f"train.svr_features: must be one of {', '.join(SVR_FEATURES)}, got {self.svr_features!r}")
        for name in ("svr_c", "svr_epsilon", "svr_gamma_factor"):
            values = svr_values(getattr(self, name))
            low = 0.0 if name == "svr_epsilon" else None
            if not values or any(not math.isfinite(v) or (v < 0 if low is not None else v <= 0) for v in values):
                need = ">= 0" if low is not None else "> 0"
                raise SmrayError(f"train.{name}: must be a number {need} or a non-empty list of them, "
                                 f"got {getattr(self, name)!r}")


#: predict.precision values; smray.inference.PRECISIONS is the same tuple (inference imports no config:
#: torch helpers stay low in the import levels) and resolves them per machine
PREDICT_PRECISIONS = ("fp32", "bf16", "int8", "int8_bf16", "auto")


@dataclass(frozen=True)
class PredictConfig:
    """Daily map prediction (smray.predict): the actor pool and the map store (where: ``paths.maps``)."""

    actors: int | None = None  #: actors in the pool (None: as many as the CPUs/GPUs allow, at most the days)
    actor_cpus: float = 0.5  #: CPUs reserved per CPU actor (fractional: leaves room for the read tasks)
    use_gpu: bool | None = None  #: None: GPU actors when the cluster has GPUs
    #: output rows per fully convolutional band: bounds memory; 16 is the fastest on a 2-core CPU
    #: (docs/benchmarks.md), a GPU wants larger bands (the mission config: 64)
    band_rows: int = 16
    #: arithmetic of the CNN: fp32 | bf16 (autocast) | int8 (int8 fully connected layers) | int8_bf16
    #: (both) | auto (the fastest the CPU/GPU supports); checked before work (smray.inference)
    precision: str = "fp32"
    overlap: bool = True  #: each actor reads the next day and writes the last one while the model runs
    coverage: float = 0.9  #: nominal coverage of the uncertainty interval written with the maps
    calibration_days: int = 10  #: training days (spread over the period) whose validation cells calibrate it
    new_store: bool = False  #: start a new store at ``out`` even if one from another model/config is there
    #: custom Ray resources each actor needs, e.g. {gpu_node: 1} to keep prediction on one worker type
    task_resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise SmrayError(f"predict.actors: must be >= 1, got {self.actors}")
        if self.actor_cpus <= 0:
            raise SmrayError(f"predict.actor_cpus: must be > 0, got {self.actor_cpus}")
        if self.band_rows < 1:
            raise SmrayError(f"predict.band_rows: must be >= 1, got {self.band_rows}")
        if self.precision not in PREDICT_PRECISIONS:
            raise SmrayError(f"predict.precision: must be one of {', '.join(PREDICT_PRECISIONS)}, got "
                             f"{self.precision!r}")
        if not 0.0 < self.coverage < 1.0:
            raise SmrayError(f"predict.coverage: must be in (0, 1), got {self.coverage}")
        check_custom_resources(self.task_resources, "predict.task_resources")
        if self.calibration_days < 1:
            raise SmrayError(f"predict.calibration_days: must be >= 1, got {self.calibration_days}")


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluation report (smray.evaluate); what is scored, against what and where the report goes: ``paths``."""

    map_day: dt.date | None = None  #: day of the map figures (None: the last scored day)
    anomaly_min_days: int = 10  #: anomaly R: a pixel counts only with at least this many scored days
    vegetation_days: int = 32  #: MPDI vegetation classes: median over at most this many days (evenly spread)
    engine: str = "ray"  #: "ray": one Ray task per days_per_task days, sums merged; "local": one loop here
    days_per_task: int = 16  #: days scored by one Ray task
    task_cpus: float = 1.0  #: CPUs of one Ray task
    tc_min_days: int = 30  #: triple collocation with ESA CCI: a pixel counts with at least this many triplets

    def __post_init__(self) -> None:
        if self.engine not in ("ray", "local"):
            raise SmrayError(f"evaluate.engine: must be 'ray' or 'local', got {self.engine!r}")
        if self.days_per_task < 1:
            raise SmrayError(f"evaluate.days_per_task: must be >= 1, got {self.days_per_task}")
        if self.tc_min_days < 3:
            raise SmrayError(f"evaluate.tc_min_days: must be >= 3, got {self.tc_min_days}")
        if not self.task_cpus > 0:
            raise SmrayError(f"evaluate.task_cpus: must be > 0, got {self.task_cpus}")
        if self.anomaly_min_days < 2:
            raise SmrayError(f"evaluate.anomaly_min_days: must be >= 2, got {self.anomaly_min_days}")
        if self.vegetation_days < 1:
            raise SmrayError(f"evaluate.vegetation_days: must be >= 1, got {self.vegetation_days}")


#: the stages of the chain (``smray reprocess``) in the order they run
REPROCESS_STAGES = ("twin", "ingest", "train", "predict", "evaluate")
#: the models the chain can train / predict with ("physical" needs no training)
REPROCESS_MODELS = ("cnn", "pixel", "svr", "physical")
#: the placeholder ``paths.models`` / ``paths.maps`` use for the model kind
KIND = "{kind}"


@dataclass(frozen=True)
class Period:
    """A range of days, both ends inclusive; None: the stage's default (see :class:`PathsConfig`)."""

    start: dt.date | None = None  #: first day
    end: dt.date | None = None  #: last day, inclusive

    def __post_init__(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise SmrayError(f"end: {self.end} is before start {self.start}")


@dataclass(frozen=True)
class PathsConfig:
    """Where every stage reads and writes, and the days each one covers: the only place URLs and
    periods live (``smray.stages.layout`` resolves the defaults; command-line flags override).

    Locations are URLs (``s3://bucket/prefix``, ``file:///path`` or a plain path, ``memory://``).
    Unset locations default to a place under ``root``; ``models`` and ``maps`` hold the
    placeholder ``{kind}`` (cnn, pixel, svr, physical) when several models are in play."""

    root: str | None = None  #: output root: <root>/twin, cube.zarr, models/{kind}, maps/{kind}.zarr, report, experiment
    twin: str | None = None  #: twin archive root: written by the twin stage, its truth/ read by evaluation (<root>/twin)
    tb: str | None = None  #: brightness-temperature archive prefix (<twin>/amsr)
    ref: str | None = None  #: reference (ERA-Interim/ERA5) archive prefix (<twin>/era_interim)
    cube: str | None = None  #: the analysis-ready cube, Zarr v3 (<root>/cube.zarr)
    models: str | None = None  #: training run directory per model (<root>/models/{kind})
    maps: str | None = None  #: map store per model, Zarr v3 (<root>/maps/{kind}.zarr)
    report: str | None = None  #: evaluation report directory (<root>/report)
    experiment: str | None = None  #: the paper experiment's directory (<root>/experiment)
    ismn: str | None = None  #: ISMN station file or directory scored by evaluation (optional)
    cci: str | None = None  #: ESA CCI SM daily file or directory, a second reference of evaluation (optional)
    #: patch shards (smray.shards): the training period's patches cut once into Parquet here and read
    #: back every epoch (unset: every epoch cuts the patches from the cube again)
    shards: str | None = None
    scored_maps: tuple[str, ...] = ()  #: map stores evaluation scores (default: the store of every model)
    ingest: Period = field(default_factory=Period)  #: days ingested (default: the twin's days, else the cube's)
    train: Period = field(default_factory=Period)  #: training days (start default: the first ingested day)
    predict: Period = field(default_factory=Period)  #: days of maps (default: the day after training .. the last ingested)
    evaluate: Period = field(default_factory=Period)  #: days scored (default: the days of maps)


@dataclass(frozen=True)
class ExperimentConfig:
    """``smray experiment paper``: the paper's protocol (train on ``paths.train``, test on the single
    day ``paths.evaluate.start``; defaults 1-30 July and 31 July 2011). ``smray experiment seasons``:
    train on ``paths.train``, test on the days of ``months`` in ``paths.evaluate`` (every
    ``test_day_every``-th), scored per month and season."""

    models: tuple[str, ...] = ("cnn", "svr", "pixel", "physical")  #: models compared side by side
    test_patches: int = 50000  #: test-day patches (the paper: 50,000)
    physical: str = "lprm"  #: physical method: "lprm" or "sca"
    test_region: str = "all"  #: "all" valid test centres (the paper), or "blocks": the blocked split's validation blocks
    #: ``smray experiment seasons``: the calendar months scored, one per season by default (Jan, Apr, Jul, Oct)
    months: tuple[int, ...] = (1, 4, 7, 10)
    #: ``smray experiment seasons``: every n-th day of each scored month of ``paths.evaluate`` is a test day
    test_day_every: int = 3

    def __post_init__(self) -> None:
        for name in self.models:
            if name not in REPROCESS_MODELS:
                raise SmrayError(f"experiment.models: unknown model {name!r} (known: {', '.join(REPROCESS_MODELS)})")
        if not self.models:
            raise SmrayError("experiment.models: no model given")
        if self.test_patches < 1:
            raise SmrayError(f"experiment.test_patches: must be >= 1, got {self.test_patches}")
        if self.physical not in ("lprm", "sca"):
            raise SmrayError(f"experiment.physical: must be lprm or sca, got {self.physical!r}")
        if self.test_region not in ("all", "blocks"):
            raise SmrayError(f"experiment.test_region: must be all or blocks, got {self.test_region!r}")
        bad = [m for m in self.months if not 1 <= m <= 12]
        if bad or not self.months or len(set(self.months)) != len(self.months):
            raise SmrayError(f"experiment.months: calendar months 1..12, each once, got {list(self.months)}")
        if self.test_day_every < 1:
            raise SmrayError(f"experiment.test_day_every: must be >= 1, got {self.test_day_every}")


@dataclass(frozen=True)
class ReprocessDays:
    """Days of maps per model, counted from the first day of ``paths.predict`` (None: the whole
    period). Slow models (the SVR: scikit-learn over every land pixel) can be limited to the test day."""

    cnn: int | None = None  #: days of CNN maps
    pixel: int | None = None  #: days of pixel-MLP maps
    svr: int | None = None  #: days of SVR maps
    physical: int | None = None  #: days of physical (LPRM) maps

    def __post_init__(self) -> None:
        for name in REPROCESS_MODELS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SmrayError(f"reprocess.predict_days.{name}: must be >= 1, got {value}")


@dataclass(frozen=True)
class ReprocessConfig:
    """The whole chain as one Ray job (``smray reprocess``, smray.stages.chain; docs/reprocess.md);
    where everything goes is ``paths``."""

    stages: tuple[str, ...] = ("ingest", "train", "predict", "evaluate")  #: of twin, ingest, train, predict, evaluate
    models: tuple[str, ...] = ("cnn",)  #: cnn, pixel, svr, physical: each trainable one trained, one map store each
    predict_days: ReprocessDays = field(default_factory=ReprocessDays)  #: per-model limit on days of maps

    def __post_init__(self) -> None:
        for name in self.stages:
            if name not in REPROCESS_STAGES:
                raise SmrayError(f"reprocess.stages: unknown stage {name!r} (known: {', '.join(REPROCESS_STAGES)})")
        for name in self.models:
            if name not in REPROCESS_MODELS:
                raise SmrayError(f"reprocess.models: unknown model {name!r} (known: {', '.join(REPROCESS_MODELS)})")
        for what, values in (("stages", self.stages), ("models", self.models)):
            if len(set(values)) != len(values):
                raise SmrayError(f"reprocess.{what}: listed twice: {', '.join(values)}")


@dataclass(frozen=True)
class Config:
    """The whole smray configuration."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    qc: QCConfig = field(default_factory=QCConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    normalise: NormConfig = field(default_factory=NormConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    reprocess: ReprocessConfig = field(default_factory=ReprocessConfig)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             dt.date: "a date YYYY-MM-DD"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except SmrayError as err:
                errors.append(str(err))
        raise SmrayError(errors[0] if len(errors) == 1 else f"{where}: unexpected value {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise SmrayError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SmrayError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise SmrayError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(k, key_tp, where): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            return parse_date(value, where)
    raise SmrayError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def parse_date(value: str, where: str = "date") -> dt.date:
    """Parse YYYY-MM-DD; one-line error naming ``where`` for impossible dates like 2011-02-30."""
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise SmrayError(f"{where}: {value!r} is not a valid date YYYY-MM-DD") from None


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SmrayError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise SmrayError(f"{_join(where, str(key))}: unknown key (known: {known})")
    kwargs = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name in data:
            try:
                kwargs[name] = _coerce(data[name], hints[name], path)
            except SmrayError:
                if not f.metadata.get(SECRET):
                    raise
                # the usual message quotes the value; a mistyped secret is still a secret
                raise SmrayError(f"{path}: expected a string (value not shown: secret field)") from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise SmrayError(f"{path}: required value is missing")
    try:
        return cls(**kwargs)
    except SmrayError as err:
        raise SmrayError(_absolute(str(err), where, fields)) from None
    except (TypeError, ValueError) as err:
        raise SmrayError(f"{where or 'config'}: {err}") from None


def _absolute(msg: str, where: str, fields: dict[str, Any]) -> str:
    """Validators name fields relative to their section (``res: …`` from GridConfig, ``synth.days: …``
    from SynthConfig); make the name absolute (``grid.res: …``), or at least name the section."""
    if not where:
        return msg
    head = msg.split(":", 1)[0].strip()
    if head == where or head.startswith(where + ".") or head.startswith(where + "["):
        return msg
    first = re.split(r"[.\[]", head, maxsplit=1)[0]
    if first in fields:
        return f"{where}.{msg}"
    section = where.rsplit(".", 1)[-1]
    if head.startswith(section + ".") or head.startswith(section + "["):
        return where[: -len(section)] + msg
    return f"{where}: {msg}"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings: YAML's own timestamp parsing raises a bare ValueError
    for an impossible date (2011-02-30), which would name neither the file nor the field."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def config_from_dict(data: dict | None) -> Config:
    """Build and validate a :class:`Config` from plain data (as parsed from YAML)."""
    return _build(Config, data or {}, "")


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Load a YAML config file (or the defaults when ``path`` is None) and apply ``overrides``,
    a nested dict of values (as given on the command line) that replace the file's."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as err:
            raise SmrayError(f"{p}: cannot read config file ({err.strerror or err})") from None
        except UnicodeDecodeError:
            raise SmrayError(f"{p}: cannot read config file (not UTF-8 text)") from None
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            loc = f" line {mark.line + 1}:" if mark is not None else ""
            problem = getattr(err, "problem", None)
            why = f" ({problem})" if problem else ""
            raise SmrayError(f"{p}:{loc} not valid YAML{why}") from None
        if data is None:  # an empty file: all defaults
            data = {}
        if not isinstance(data, dict):
            raise SmrayError(f"{p}: a config file must be a mapping of sections")
    if overrides:
        data = _merge(data, overrides)
    return config_from_dict(data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def to_dict(obj: Any, *, secrets: bool = False) -> Any:
    """Plain data for YAML/JSON/attributes. Secret fields are dropped unless ``secrets``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            if f.metadata.get(SECRET) and not secrets:
                continue
            out[f.name] = to_dict(getattr(obj, f.name), secrets=secrets)
        return out
    if isinstance(obj, tuple):
        return [to_dict(v, secrets=secrets) for v in obj]
    if isinstance(obj, dt.date):
        return obj.isoformat()
    return obj


def dump_config(cfg: Config) -> str:
    """YAML for ``cfg`` without secrets; ``load_config`` of it gives back an equal config
    (apart from the secrets)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
