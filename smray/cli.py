"""The ``smray`` command line. Every subcommand has ``--help``; errors are one line on stderr
(``smray: error: …``) with exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

from smray import __version__
from smray.errors import SmrayError

DEMO_CONFIG = Path(__file__).with_name("configs") / "demo.yaml"
DEFAULT_DEMO_DATA = ".smray/s3"


def _bbox(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W,S,E,N numbers, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 numbers W,S,E,N, got {text!r}")
    return values


def _overrides(args: argparse.Namespace, flags: dict[str, str], extra: dict | None = None) -> dict:
    """Nested config overrides from the flags that were given: ``flags`` maps an argument name to a
    dotted config key (``{"out": "paths.twin"}``); ``extra`` adds fixed values the same way."""
    values = {key: getattr(args, name, None) for name, key in flags.items()}
    values.update(extra or {})
    out: dict = {}
    for key, value in values.items():
        if value is None or value is False:
            continue
        *sections, last = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return out


def _load(args: argparse.Namespace, flags: dict[str, str], extra: dict | None = None):  # -> Config
    from smray.config import load_config

    return load_config(args.config, _overrides(args, flags, extra))


def _progress() -> Callable[[str], None]:
    return functools.partial(print, flush=True)


# --------------------------------------------------------------------------------------------
# Subcommands: each loads the config with its flags as overrides and runs one stage
# --------------------------------------------------------------------------------------------
SYNTH_FLAGS = {"out": "paths.twin", "start": "synth.start", "days": "synth.days", "seed": "synth.seed",
               "spinup_days": "synth.spinup_days", "tb_layout": "synth.tb_layout", "res": "grid.res",
               "bbox": "grid.bbox", "gzip": "synth.gzip"}


def cmd_synth(args: argparse.Namespace) -> int:
    from smray.stages import twin

    cfg = _load(args, SYNTH_FLAGS, {"synth.overwrite": args.overwrite})
    summary = twin.run(cfg, _progress(), force=args.overwrite)
    for result in summary.results.values():
        _report_twin(result)
    return 0


def _report_twin(summary) -> None:  # smray.synth.twin.TwinSummary
    kinds: dict[str, int] = {}
    for f in summary.files:
        top = f.split("/", 1)[0] if "/" in f else f
        kinds[top] = kinds.get(top, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    obs = ", ".join(f"{p} {100 * v:.0f}%" for p, v in summary.observed_fraction.items())
    print(f"synth: wrote {summary.days} days to {summary.out} in {summary.seconds:.0f} s "
          f"({summary.days_per_minute():.1f} days/min): {parts}; observed cells per pass-day: {obs}")


def cmd_s3_serve(args: argparse.Namespace) -> int:
    from smray.s3server import serve

    return serve(args.host, args.port, args.data)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there before."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default: a local S3 endpoint, one local Ray runtime, the whole chain on the twin
    (twin → ingest → train → predict → evaluate, smray.stages.chain); finished stages are skipped."""
    from smray.config import load_config
    from smray.s3server import LocalS3
    from smray.stages.chain import run_chain

    cfg = load_config(args.config or DEMO_CONFIG)
    data_dir = Path(args.data).resolve()
    print(f"demo: starting the local S3 endpoint (objects persist in {data_dir})")
    with LocalS3(port=args.port, data_dir=data_dir) as s3, _environment(s3.env()):
        print(f"demo: S3 endpoint {s3.endpoint_url}")
        summary = run_chain(cfg, progress=_progress())
        print(f"demo: saving the bucket contents to {data_dir} ...")

    def on_disk(url: str) -> str:
        return f"{data_dir}/{url.split('://', 1)[-1]}" if url.startswith("s3://") else url

    print("demo: done. Outputs on the local S3 endpoint, saved on disk:")
    for name, url in summary.outputs():
        print(f"  {name:14s} {url}  ->  {on_disk(url)}")
    if "evaluate" in summary.plan.stages:
        print(f"demo: the report (CNN vs SVR vs physical, maps): {on_disk(summary.plan.layout.need('report'))}"
              f"/report.md")
    print(f"Browse them with `.venv/bin/smray s3 serve --data {args.data}` and any S3 client at the printed "
          f"endpoint, or open a store with xarray.open_zarr(path, consolidated=True).")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from smray.stages import ingest

    cfg = _load(args, {"tb": "paths.tb", "ref": "paths.ref", "out": "paths.cube", "start": "paths.ingest.start",
                       "end": "paths.ingest.end"})
    ingest.run(cfg, _progress(), force=args.force)  # a local Ray runtime is started (and stopped) only if there is work
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from smray.stages import train

    cfg = _load(args, {"cube": "paths.cube", "train_start": "paths.train.start", "train_end": "paths.train.end",
                       "out": "paths.models", "model": "model.kind", "workers": "train.workers",
                       "shards": "paths.shards"})
    train.run(_single_model(cfg, cfg.model.kind), _progress(), force=args.force)
    return 0


def _single_model(cfg, kind: str):  # (Config, str) -> Config
    """``cfg`` with ``kind`` the only model in play (a single-model command)."""
    import dataclasses

    from smray.train import kind_config

    return kind_config(dataclasses.replace(cfg, reprocess=dataclasses.replace(cfg.reprocess, models=(kind,))), kind)


def cmd_experiment_paper(args: argparse.Namespace) -> int:
    from smray.stages import experiment

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    cfg = _load(args, {"cube": "paths.cube", "twin": "paths.twin", "out": "paths.experiment",
                       "train_start": "paths.train.start", "train_end": "paths.train.end",
                       "test_day": "paths.evaluate.start", "test_patches": "experiment.test_patches",
                       "physical": "experiment.physical", "test_region": "experiment.test_region"},
                {"experiment.models": models})
    experiment.run(cfg, _progress(), force=args.force)
    return 0


def cmd_experiment_seasons(args: argparse.Namespace) -> int:
    from smray.stages import seasons
    from smray.stages.chain import run_chain

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    cfg = _load(args, {"root": "paths.root", "test_patches": "experiment.test_patches"},
                {"experiment.models": models})
    run_chain(cfg, ["ingest"] if cfg.paths.tb else ["twin", "ingest"], progress=_progress())  # each skipped when done
    seasons.run(cfg, _progress(), force=args.force)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from smray.stages import predict
    from smray.storage import resolve_storage

    model = args.model if args.model is None or args.model.strip().lower() != predict.PHYSICAL else None
    cfg = _load(args, {"cube": "paths.cube", "out": "paths.maps", "start": "paths.predict.start",
                       "end": "paths.predict.end", "twin": "paths.twin", "new_store": "predict.new_store"},
                {"paths.models": model})
    if args.model is None and cfg.paths.models is None:
        raise SmrayError("--model: required (a training run directory or 'physical'; or paths.models in --config)")
    kind = predict.model_kind(args.model or cfg.paths.models, resolve_storage(cfg.storage))
    predict.run(_single_model(cfg, kind), _progress(), force=args.force)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from smray.stages import evaluate

    cfg = _load(args, {"maps": "paths.scored_maps", "cube": "paths.cube", "truth": "paths.twin",
                       "ismn": "paths.ismn", "cci": "paths.cci", "out": "paths.report",
                       "start": "paths.evaluate.start", "end": "paths.evaluate.end", "day": "evaluate.map_day"})
    evaluate.run(cfg, _progress(), force=args.force)
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from smray.stages.chain import run_chain

    cfg = _load(args, {"root": "paths.root"})
    force = [s for item in args.force for s in item.split(",") if s.strip()]
    stages = args.stages.split(",") if args.stages is not None else None
    run_chain(cfg, stages=stages, force=force, progress=_progress())
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from smray.config import load_config
    from smray.plot import plot_map
    from smray.storage import resolve_storage

    cfg = load_config(args.config)
    out = plot_map(args.store, args.date, args.out, var=args.var, storage=resolve_storage(cfg.storage))
    print(f"plot: wrote {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from smray.config import load_config
    from smray.inspect import format_inspect, inspect_url

    cfg = load_config(args.config)
    info = inspect_url(args.url, cfg.storage)
    print(json.dumps(info, indent=1, default=str) if args.json else format_inspect(info))
    return 0


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smray", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"smray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from smray.synth.layouts import LAYOUTS

    p = sub.add_parser("synth", help="generate the AMSR-E / ERA-Interim twin archive",
                       description="Generate a physically based AMSR-E / ERA-Interim twin in the real products' "
                                   "file layouts (JAXA L3 TB HDF5, ERA-Interim netCDF) plus truth side files. "
                                   "Days are rendered in parallel Ray tasks. Refuses to write into a non-empty "
                                   "archive unless --overwrite.")
    p.add_argument("--out", help="archive root URL: s3://bucket/prefix, file:// or a path, memory:// (paths.twin)")
    p.add_argument("--start", help="first day, YYYY-MM-DD (default 2011-07-01)")
    p.add_argument("--days", type=int, help="number of days (default 35)")
    p.add_argument("--res", type=float, help="grid spacing in degrees, must divide 180 (default 0.25)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--bbox", type=_bbox, help="region W,S,E,N in degrees (it must hold land): TB files keep the "
                                              "products' global shape, the ERA file is an area retrieval")
    p.add_argument("--spinup-days", dest="spinup_days", type=int, help="model spin-up before --start (default 60)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into an existing archive")
    p.add_argument("--layout", dest="tb_layout", choices=LAYOUTS,
                   help="TB file layout: JAXA L3 HDF5 (default), NSIDC-0302 quarter-degree or NSIDC-0301 "
                        "EASE-Grid flat binary, NSIDC AE_Land3 HDF4 with the ocean filled, or NSIDC AE_L2A "
                        "half-orbit swaths HDF4 (synth.tb_layout)")
    p.add_argument("--gzip", action="store_true",
                   help="NSIDC-0302/0301 layouts: write the files gzip-compressed with .gz added, as NSIDC "
                        "delivers them (synth.gzip)")
    p.add_argument("--config", help="YAML config file (command-line values override it)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("s3", help="the local S3 endpoint", description="Local S3 endpoint (moto server) on "
                                                                       "127.0.0.1.")
    s3sub = p.add_subparsers(dest="s3_command", required=True, metavar="ACTION")
    ps = s3sub.add_parser("serve", help="run a local S3 endpoint until Ctrl-C",
                          description="Run a real S3 endpoint on the loopback interface until interrupted. "
                                      "With --data, buckets are loaded from DIR/<bucket>/<key> at start and "
                                      "saved back there at exit. Any credentials are accepted.")
    ps.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ps.add_argument("--port", type=int, default=9000, help="TCP port (default 9000; 0 picks a free one)")
    ps.add_argument("--data", default=None, help="directory the buckets persist in (default: none, in memory)")
    ps.set_defaults(func=cmd_s3_serve)

    p = sub.add_parser("demo", help="run the main job on the embedded default (local S3, local Ray)",
                       description="Start a local S3 endpoint and a local Ray runtime, and run the main job on "
                                   "the embedded default config (smray/configs/demo.yaml): the whole chain of "
                                   "smray reprocess on the twin -- generate the twin into "
                                   "s3://smray-demo/twin, ingest it into the cube s3://smray-demo/cube.zarr, train "
                                   "the CNN and the SVR, predict maps with them and the physical retrieval, and "
                                   "write the evaluation report to s3://smray-demo/report. Finished stages are "
                                   "skipped on a re-run. Objects persist under --data.")
    p.add_argument("--config", help="YAML config to use instead of the embedded default")
    p.add_argument("--data", default=DEFAULT_DEMO_DATA, help=f"S3 persistence directory (default {DEFAULT_DEMO_DATA})")
    p.add_argument("--port", type=int, default=0, help="S3 endpoint port (default: a free port)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="build the analysis-ready cube from TB and reference archives",
                       description="Read brightness temperatures (JAXA L3, NSIDC-0302/0301, AE_Land3 or AE_L2A swaths) "
                                   "and the reference "
                                   "(ERA-Interim/ERA5 GRIB or netCDF) from object storage, screen, composite and "
                                   "regrid them day by day in parallel Ray Data tasks, and write an analysis-ready "
                                   "Zarr cube. A re-run skips finished days; a later --end appends.")
    p.add_argument("--tb", help="URL prefix of the brightness-temperature archive (paths.tb)")
    p.add_argument("--ref", help="URL prefix of the reference archive (paths.ref)")
    p.add_argument("--start", help="first day YYYY-MM-DD (paths.ingest.start)")
    p.add_argument("--end", help="last day YYYY-MM-DD, inclusive (paths.ingest.end)")
    p.add_argument("--out", help="cube URL (Zarr) (paths.cube)")
    p.add_argument("--config", help="YAML config (paths, grid, qc, ingest, storage sections)")
    _force_flag(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("train", help="train the retrieval model (CNN, pixel MLP or SVR) on a cube",
                       description="Fit the normalisation on the training period, stream 9x9 patches from the cube "
                                   "with Ray Data and train the CNN (or the pixel MLP) data-parallel on Ray Train, "
                                   "or fit the SVR baseline. Checkpoints go to OUT/ray_train; running the same "
                                   "command again resumes from the latest one. Writes OUT/model.pt (or svr.npz), "
                                   "normalisation.json and training.json.")
    p.add_argument("--cube", help="cube URL (Zarr) written by smray ingest (or paths.cube)")
    p.add_argument("--train-start", dest="train_start", help="first training day YYYY-MM-DD (or paths.train.start)")
    p.add_argument("--train-end", dest="train_end", help="last training day YYYY-MM-DD, inclusive (or paths.train.end)")
    p.add_argument("--out", help="training run directory URL for the model, checkpoints and training.json "
                                     "(or paths.models)")
    p.add_argument("--model", choices=("cnn", "pixel", "svr"), help="model kind (default: model.kind, cnn)")
    p.add_argument("--workers", type=int, help="Ray Train data-parallel workers (default: train.workers)")
    p.add_argument("--shards", help="patch-shard store URL: cut the period's patches into Parquet there once and "
                                    "read them every epoch (or paths.shards; default: cut from the cube every epoch)")
    p.add_argument("--config", help="YAML config (paths, model, train, patches, normalise, qc, storage, ray sections)")
    _force_flag(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("experiment", help="the paper's experiments",
                       description="Reproduce the paper's experiments on a cube and its twin.")
    esub = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    pe = esub.add_parser("paper", help="train on 1-30 July 2011, test on 31 July, print Table 2",
                         description="Train the CNN, the pixel MLP and the SVR on the training period (each into "
                                     "OUT/<model>; finished models are not retrained, unfinished ones resume), cut "
                                     "the test day's patches with the training normalisation, run the physical "
                                     "retrieval (LPRM) with the twin's ancillary data, and print Table 2 (R², RMSE "
                                     "in normalised units and m³/m³, also against the twin's truth) beside the "
                                     "paper's numbers. Writes OUT/paper_experiment.json, .md and "
                                     "paper_test_predictions.npz.")
    pe.add_argument("--cube", help="cube URL (Zarr) written by smray ingest (or paths.cube)")
    pe.add_argument("--twin", help="twin archive root URL, its truth/ files (or paths.twin)")
    pe.add_argument("--out", help="output URL: models under OUT/<model>, the report beside them "
                                     "(or paths.experiment)")
    pe.add_argument("--models", help="comma-separated subset of cnn,svr,pixel,physical (experiment.models; "
                                     "default: all)")
    pe.add_argument("--test-patches", dest="test_patches", type=int,
                    help="test-day patches (experiment.test_patches; default 50000, the paper's)")
    pe.add_argument("--train-start", dest="train_start",
                    help="first training day (paths.train.start; default 2011-07-01)")
    pe.add_argument("--train-end", dest="train_end", help="last training day (paths.train.end; default 2011-07-30)")
    pe.add_argument("--test-day", dest="test_day", help="test day (paths.evaluate.start; default 2011-07-31)")
    pe.add_argument("--physical", choices=("lprm", "sca"), help="physical method (experiment.physical; default lprm)")
    pe.add_argument("--test-region", dest="test_region", choices=("all", "blocks"),
                    help="score every valid test centre (all, the paper's) or only those inside the blocked "
                         "split's validation blocks (blocks: writes OUT/paper_experiment_blocks.*)")
    pe.add_argument("--config", help="YAML config (paths, experiment, patches, model, train, normalise, qc, storage, "
                                      "ray sections)")
    _force_flag(pe)
    pe.set_defaults(func=cmd_experiment_paper)
    ps = esub.add_parser("seasons", help="train on one year, score months of every season of another year",
                         description="A protocol beyond the paper's. Runs the twin and ingest stages of the config "
                                     "(each skipped when done), trains the CNN, the pixel MLP and the SVR on "
                                     "paths.train (each into OUT/<model>; finished models are not retrained), then "
                                     "scores them and the physical retrieval on the days of experiment.months in "
                                     "paths.evaluate (every experiment.test_day_every-th day), per season, per "
                                     "month and in all, against the reference and the twin's truth. Writes "
                                     "OUT/seasons_experiment.json, .md and seasons_test_predictions.npz. "
                                     "Example: smray experiment seasons --config smray/configs/seasons.yaml")
    ps.add_argument("--config", required=True, help="YAML config (smray/configs/seasons.yaml: the region, the twin's "
                                                    "years, paths.train and paths.evaluate, experiment.months)")
    ps.add_argument("--root", help="output root URL, overriding paths.root (OUT = <root>/experiment)")
    ps.add_argument("--models", help="comma-separated subset of cnn,svr,pixel,physical (experiment.models; "
                                     "default: all)")
    ps.add_argument("--test-patches", dest="test_patches", type=int,
                    help="patches per test day (experiment.test_patches)")
    _force_flag(ps)
    ps.set_defaults(func=cmd_experiment_seasons)

    p = sub.add_parser("reprocess", help="the whole chain as one Ray job (twin, ingest, train, predict, evaluate)",
                       description="Run the stages of reprocess.stages (twin, ingest, train, predict, evaluate) with "
                                   "one Ray runtime, each skipped when its outputs are already there and current. "
                                   "Where everything goes is the config's paths section (under paths.root: "
                                   "twin/, cube.zarr, models/{kind}, maps/{kind}.zarr, report/). Also a Ray job: "
                                   "python -m pipelines.reprocess with the same arguments.")
    p.add_argument("--config", required=True, help="YAML config (the paths and reprocess sections and every stage's)")
    p.add_argument("--stages", help="comma-separated stages to run instead of reprocess.stages "
                                    "(twin,ingest,train,predict,evaluate)")
    p.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="recompute STAGE even when its outputs are done (repeatable or comma-separated)")
    p.add_argument("--root", help="output root URL, overriding paths.root")
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("predict", help="predict daily soil-moisture maps with a trained model into a map store",
                       description="Predict a global map per day (per pass and combined, with a calibrated 90% "
                                   "uncertainty) from the cube with a trained model (a training run directory) or the "
                                   "physical retrieval ('physical', needs --twin), on a Ray Data actor pool, into a "
                                   "CF-1.8 Zarr map store. A re-run skips finished days; a later --end appends.")
    p.add_argument("--cube", help="cube URL (Zarr) written by smray ingest (or paths.cube)")
    p.add_argument("--model", help="training run directory (model.pt or svr.npz), or 'physical' (or paths.models)")
    p.add_argument("--start", help="first day YYYY-MM-DD (paths.predict.start; default: the cube's first day)")
    p.add_argument("--end", help="last day YYYY-MM-DD, inclusive (paths.predict.end; default: the cube's last day)")
    p.add_argument("--out", help="map store URL (Zarr) (or paths.maps)")
    p.add_argument("--twin", help="twin archive root: ancillary data of the physical retrieval (paths.twin)")
    p.add_argument("--new-store", dest="new_store", action="store_true",
                   help="replace an existing store written by another model or with other settings")
    p.add_argument("--config", help="YAML config (paths, predict, qc, storage, ray sections)")
    _force_flag(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score map stores against the cube (and truth, ISMN): metrics.json + report",
                       description="Score every map store (one per model: cnn, svr, pixel, physical) against the "
                                   "cube's reference swvl1 side by side: R², RMSE (normalised and m³/m³), bias, "
                                   "ubRMSD, Pearson and anomaly R, per pass, by latitude band and by MPDI vegetation "
                                   "class, season, month and year; against the twin's truth with --truth, ISMN "
                                   "stations with --ismn and ESA CCI SM with --cci. "
                                   "Writes OUT/metrics.json, OUT/report.md and PNG figures beside it.")
    p.add_argument("--maps", action="append", metavar="URL",
                   help="map store URL (Zarr); repeat for several models (or paths.scored_maps)")
    p.add_argument("--cube", help="cube URL (Zarr) with the reference (or paths.cube)")
    p.add_argument("--truth", help="twin archive root (its truth/ files), optional (paths.twin)")
    p.add_argument("--ismn", help="ISMN .stm file, header+values zip or directory of them, optional (paths.ismn)")
    p.add_argument("--cci", help="ESA CCI SM daily file or directory of them (ESACCI-SOILMOISTURE-L3S-SSMV-*), "
                                 "a second reference, optional (paths.cci)")
    p.add_argument("--out", help="report directory, path or URL (or paths.report)")
    p.add_argument("--start", help="first scored day YYYY-MM-DD (paths.evaluate.start; default: the maps' first day)")
    p.add_argument("--end", help="last scored day YYYY-MM-DD, inclusive (paths.evaluate.end; default: the maps' last "
                                     "day)")
    p.add_argument("--day", help="day of the map figures YYYY-MM-DD (evaluate.map_day; default: the first scored day "
                                 "when the period is set, else each model's last scored day)")
    p.add_argument("--config", help="YAML config (paths, evaluate, storage sections)")
    _force_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="quick-look map of one variable of a cube or map store on one day",
                       description="Draw one day of a cube (default variable swvl1) or map store (default "
                                   "soil_moisture) as a PNG with a colorbar, zoomed to the cells with data. "
                                   "Variables with a pass or channel axis take their values after colons: "
                                   "tb:A:06H, qc:D, soil_moisture_asc.")
    p.add_argument("store", metavar="STORE", help="cube or map store URL (Zarr)")
    p.add_argument("--date", required=True, help="day YYYY-MM-DD")
    p.add_argument("--var", help="variable, NAME or NAME:PASS[:CHANNEL] (default swvl1 / soil_moisture)")
    p.add_argument("--out", required=True, help="PNG path or URL")
    p.add_argument("--config", help="YAML config (storage settings)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("inspect", help="describe a product file (local path or URL)",
                       description="Detect the product of a file (JAXA L3 TB, AE_Land3, ERA GRIB/netCDF, CCI, "
                                   "ISMN, ...) and print its variables, grid, time steps and decoded statistics "
                                   "of the main variable (fills masked, scale applied; ERA over land).")
    p.add_argument("url", metavar="PATH_OR_URL")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--config", help="YAML config (storage settings)")
    p.set_defaults(func=cmd_inspect)
    return parser


def _force_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="recompute even when the outputs are there and current (a re-run otherwise skips what is "
                        "done)")


def _join_option_values(argv: list[str], options: tuple[str, ...] = ("--bbox",)) -> list[str]:
    """``--bbox -10,35,30,60`` → ``--bbox=-10,35,30,60`` (argparse takes a leading '-' for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_option_values(list(sys.argv[1:] if argv is None else argv)))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SmrayError as err:
        print(f"smray: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smray: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
