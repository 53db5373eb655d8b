"""Synthetic inputs for tests: seeded, keyword-only builders that write through smray's own public paths.

Each builder takes its sizes and its ``seed`` by keyword and is deterministic for them:

* :func:`write_config` -- a validated config file: defaults, a base (YAML file or sections), sections on top;
  :data:`SMALL_RUN` and :data:`TINY_CHAIN` are the sizes the end-to-end tests share.
* :func:`build_twin`, :func:`build_twin_and_cube` -- a small twin (``smray synth``) and its cube
  (``smray ingest``), through the command line as a user runs them (Ray: the session's runtime when one is up).
* :func:`write_smooth_cube` -- a cube of smooth, known fields written with the cube's own writer (no Ray).
* :func:`write_map_store` -- a map store in the ``smray-maps-1`` schema, written with plain xarray (not with
  :mod:`smray.mapstore`), so that readers are checked against the schema rather than against the writer.
* :func:`write_stm` -- an ISMN station file laid out as the real ones are.
* :func:`fake_autoscaling_cluster` -- a Ray head with no CPUs whose fake autoscaler starts worker nodes as local
  processes when work asks for them (``cluster/fake-autoscaler.yaml``), stopped by its own process ids.

Example::

    from smray.testing import build_twin_and_cube
    twin, cube = build_twin_and_cube(tmp_path, start=dt.date(2011, 7, 1), days=3, res=2.0, seed=5)
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml

from smray import cube as cubemod, qc as qcmod
from smray.config import Config, GridConfig, load_config, to_dict
from smray.grid import Grid
from smray.mapstore import MAP_FORMAT

#: the first eight bytes of every PNG file
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Run settings that fit a 2-core test machine: a local Ray runtime of 4 logical CPUs (room for actors and
#: read tasks at once), one half-CPU training worker, half-CPU inference actors, no early stopping, an SVR
#: of one C/ε (no validation search: tests/test_train.py and tests/test_baselines.py cover the search).
SMALL_RUN: dict[str, dict[str, Any]] = {
    "ray": {"num_cpus": 4},
    "train": {"workers": 1, "cpus_per_worker": 0.5, "batch_size": 128, "patience": 0, "svr_c": 1.0,
              "svr_epsilon": 0.01},
    "predict": {"actor_cpus": 0.5},
}


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Config sections merged left to right: a later layer's value wins, nested mappings merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            below = out.get(key)
            both = isinstance(below, Mapping) and isinstance(value, Mapping)
            out[key] = merged(below, value) if both else copy.deepcopy(value)
    return out


#: The smallest whole chain on a 2° twin (about 3,000 land cells): 700 patches a day, one epoch, an SVR
#: fitted on 300 samples.
TINY_CHAIN: dict[str, dict[str, Any]] = merged(SMALL_RUN, {
    "grid": {"res": 2.0},
    "patches": {"per_day": 700, "train_per_day": 500, "val_per_day": 200},
    "train": {"epochs": 1, "svr_max_samples": 300},
})


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""


def write_config(path: Path, *, base: str | Path | Mapping[str, Any] | None = None,
                 **sections: Mapping[str, Any]) -> Path:
    """Write ``path``: the defaults, then ``base`` (a YAML config file or a mapping of sections), then
    ``sections`` (e.g. ``train={"epochs": 2}``), validated by :func:`smray.config.load_config` and written
    out in full, secrets included, so that the file alone says what a test ran with."""
    if base is None or isinstance(base, Mapping):
        cfg = load_config(None, merged(base or {}, sections))
    else:
        cfg = load_config(base, merged(sections))
    path.write_text(yaml.safe_dump(to_dict(cfg, secrets=True), sort_keys=False), encoding="utf-8")
    return path


def build_twin(out: Path | str, *, start: dt.date, days: int, res: float, seed: int, spinup_days: int = 3,
               bbox: tuple[float, float, float, float] | None = None) -> Path | str:
    """The twin stage (``smray synth``): a twin of ``days`` days from ``start`` at ``res`` degrees
    (optionally a ``bbox`` window) into ``out``, after ``spinup_days`` of soil-moisture spin-up."""
    from smray.stages import twin

    cfg = load_config(None, {"grid": {"res": res, "bbox": list(bbox) if bbox is not None else None},
                             "synth": {"start": start.isoformat(), "days": days, "seed": seed,
                                       "spinup_days": spinup_days},
                             "paths": {"twin": str(out)}})
    twin.run(cfg, quiet)
    return out


def ingest_twin(twin: Path | str, out: Path | str, *, start: dt.date, end: dt.date, config: Path) -> int:
    """The ingest stage (``smray ingest``) of the twin's days ``start``..``end`` into the cube ``out``,
    with the settings of the config file ``config``, its progress printed as the command prints it; 0 when
    it ran (a SmrayError otherwise)."""
    from smray.stages import ingest

    cfg = load_config(config, {"paths": {"tb": f"{twin}/amsr", "ref": f"{twin}/era_interim", "cube": str(out),
                                         "ingest": {"start": start.isoformat(), "end": end.isoformat()}}})
    ingest.run(cfg, print)
    return 0


def build_twin_and_cube(root: Path, *, start: dt.date, days: int, res: float, seed: int, spinup_days: int = 3,
                        bbox: tuple[float, float, float, float] | None = None,
                        config: Path | None = None) -> tuple[Path, Path]:
    """A twin (``root/twin``, see :func:`build_twin`) and its cube (``root/cube.zarr``) of every twin day.
    ``config`` is the ingest's config file (default: ``root/ingest.yaml`` with the twin's grid)."""
    twin = build_twin(root / "twin", start=start, days=days, res=res, seed=seed, spinup_days=spinup_days, bbox=bbox)
    if config is None:
        config = write_config(root / "ingest.yaml", grid={"res": res, "bbox": bbox})
    cube = root / "cube.zarr"
    end = start + dt.timedelta(days=days - 1)
    assert ingest_twin(twin, cube, start=start, end=end, config=config) == 0, f"smray ingest into {cube} failed"
    return twin, cube


def write_smooth_cube(url: str, *, start: dt.date, days: int, res: float,
                      bbox: tuple[float, float, float, float]) -> str:
    """A cube of known smooth fields, written with the cube's own writer (no Ray). Land is a disc in the
    middle of the window; swvl1 rises west to east, 0.1 to 0.4 m³/m³, plus 0.02 a day; TB (K) is
    240 + 10 × channel + pass + 20 × (row / rows); the descending pass is flagged ``composited`` in the
    eastern half. Deterministic: there is nothing random in it."""
    grid = GridConfig(res=res, bbox=bbox).grid()
    ny, nx = grid.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    land = (((yy - ny / 2) / (ny / 2.5)) ** 2 + ((xx - nx / 2) / (nx / 2.5)) ** 2 < 1).astype(np.float32)
    cubemod.create_or_extend(url, None, grid, start, start + dt.timedelta(days=days - 1), land)
    for k in range(days):
        swvl1 = np.where(land > 0, 0.1 + 0.3 * xx / nx + 0.02 * k, np.nan).astype(np.float32)
        tb = np.stack([np.stack([240.0 + 10 * c + 20 * yy / ny + p for c in range(4)]) for p in range(2)])
        qc = np.where(land > 0, 0, qcmod.FLAGS["open_water"]).astype(np.uint16)
        qc_desc = qc | qcmod.FLAGS["composited"] * (xx > nx / 2)
        cubemod.write_day(url, None, start + dt.timedelta(days=k), tb.astype(np.float32),
                          np.stack([qc, qc_desc]).astype(np.uint16), swvl1)
    cubemod.finalize(url)
    return url


def write_map_store(url: str, *, cube_url: str, seed: int, kind: str = "cnn",
                    bias: tuple[float, float] = (0.02, -0.01), noise: float = 0.03, days: list[dt.date] | None = None,
                    norm: tuple[float, float] | None = (0.05, 0.45), fmt: str = MAP_FORMAT, crop: int = 0,
                    storage_options: dict | None = None) -> xr.Dataset:
    """A map store of the cube's days (or ``days``), rows from ``crop`` on. Per pass: the cube's swvl1 +
    ``bias[pass]`` + N(0, ``noise``) m³/m³ with 10% gaps, drawn from ``seed``; combined: the mean of the
    available passes. ``norm`` is the (lower, upper) target range recorded as the store's normalisation
    (None: none recorded). Every variable, coordinate and attribute of the schema (docs/evaluate.md)."""
    ds = cubemod.open_cube(cube_url).load()
    if days is not None:
        ds = ds.sel(time=[np.datetime64(d) for d in days])
    if crop:
        ds = ds.isel(lat=slice(crop, None))
    rng = np.random.default_rng(seed)
    ref = ds["swvl1"].values.astype(np.float64)
    per = []
    for b in bias:
        v = ref + b + noise * rng.standard_normal(ref.shape)
        v[rng.random(ref.shape) < 0.1] = np.nan
        per.append(v.astype(np.float32))
    both = np.isfinite(per[0]) & np.isfinite(per[1])
    comb = np.where(both, (per[0].astype(np.float64) + per[1]) / 2, np.where(np.isfinite(per[0]), per[0], per[1]))
    t = ((ds["time"].values - np.datetime64("1970-01-01")) // np.timedelta64(1, "D")).astype(np.int64)
    dims = ("time", "lat", "lon")
    sm = {"grid_mapping": "crs", "coordinates": "time lat lon", "units": "m3 m-3",
          "standard_name": "volume_fraction_of_condensed_water_in_soil"}
    out = xr.Dataset(
        {"soil_moisture": (dims, comb.astype(np.float32),
                           {**sm, "long_name": "surface soil moisture (0-7 cm), mean of the available passes",
                            "ancillary_variables": "soil_moisture_uncertainty qc", "cell_methods": "time: mean"}),
         "soil_moisture_asc": (dims, per[0], {**sm, "long_name": "surface soil moisture, ascending pass (13:30)"}),
         "soil_moisture_desc": (dims, per[1], {**sm, "long_name": "surface soil moisture, descending pass (01:30)"}),
         "soil_moisture_uncertainty": (dims, np.full(comb.shape, 0.05, np.float32),
                                       {**sm, "coverage": 0.9, "method": "fixed (test)"}),
         "qc": (("time", "pass", "lat", "lon"), ds["qc"].values, {**qcmod.cf_attrs(), "grid_mapping": "crs"}),
         "land_fraction": (("lat", "lon"), ds["land_fraction"].values.astype(np.float32)),
         "crs": ((), np.int32(0), {"grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
                                   "inverse_flattening": 298.257223563}),
         "time_bnds": (("time", "nv"), np.stack([t, t + 1], axis=1))},
        coords={"time": ("time", t, {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                                      "axis": "T", "bounds": "time_bnds"}),
                "lat": ("lat", ds["lat"].values, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", ds["lon"].values, {"standard_name": "longitude", "units": "degrees_east"}),
                "pass": ("pass", np.array(["A", "D"]))})
    grid = json.loads(ds.attrs["smray_grid"])
    if crop:
        grid["row0"] += crop
    out.attrs = {"Conventions": "CF-1.8", "title": f"test maps ({kind})", "smray_format": fmt,
                 "smray_version": "0.1.0", "smray_grid": json.dumps(grid), "smray_model_kind": kind,
                 "smray_model": f"file:///models/{kind}", "smray_model_fingerprint": "test",
                 "smray_checkpoint_sha256": "0" * 64,
                 "smray_norm_stats": json.dumps({"target_lower": norm[0], "target_upper": norm[1]}) if norm else "",
                 "smray_cube": cube_url, "smray_config": json.dumps(to_dict(Config())), "smray_packages": "{}"}
    enc = {v: {"chunks": (1, *out[v].shape[1:])} for v in ("soil_moisture", "soil_moisture_asc",
                                                            "soil_moisture_desc", "soil_moisture_uncertainty", "qc")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zarr: the 'pass' strings have no v3 spec yet
        warnings.simplefilter("ignore", FutureWarning)
        out.to_zarr(url, mode="w", consolidated=False, zarr_format=3, encoding=enc, storage_options=storage_options)
    return out


def quarter_degree_tbs(root: Path, date: dt.date, pass_: str, grid: Grid) -> np.ndarray:
    """(channel, lat, lon) K of a twin's NSIDC-0302 pass-day (``cube.CHANNELS``) decoded with plain
    numpy, not smray's reader, on ``grid``: the twin repeats each cell of a grid coarser than 0.25°
    on its quarter-degree cells, so one of them is taken; count 0 (no data) is NaN."""
    from smray.synth.layouts import flat_path

    k = round(grid.res / 0.25)
    out = np.full((len(cubemod.CHANNELS), *grid.shape), np.nan, dtype=np.float32)
    for c, ch in enumerate(cubemod.CHANNELS):
        raw = np.fromfile(Path(root) / flat_path("nsidc_0302", date, pass_, ch), dtype="<u2").reshape(720, 1440)
        out[c] = np.where(raw == 0, np.nan, raw / 10.0)[::k, ::k][grid.window]
    return out


def observed(tb: np.ndarray, qc_cfg: Any) -> np.ndarray:
    """bool (lat, lon): every channel of ``tb`` (channel, lat, lon) finite and inside the QC config's
    physical TB range."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(tb) & (tb >= qc_cfg.tb_min_k) & (tb <= qc_cfg.tb_max_k)).all(axis=0)


def write_stm(directory: Path, *, lat: float, lon: float, depth: tuple[float, float],
              hours: list[tuple[str, float, str]], station: str = "TWIN-1") -> Path:
    """An ISMN header+values file (``.stm``) in ``directory`` as the real ones are laid out: CR line ends, a
    fixed-width header (network, station, lat, lon, elevation, depth from/to in m, sensor), then one line
    per (``"YYYY/MM/DD HH:MM"``, soil moisture m³/m³, ISMN flag) of ``hours``."""
    head = (f"TWINNET    TWINNET         {station:<16s}{lat:10.5f}{lon:12.5f}  100.00{depth[0]:8.4f}{depth[1]:8.4f} "
            f"TestProbe ")
    body = [f"{stamp}   {value:.4f} {flag} M " for stamp, value, flag in hours]
    name = f"TWINNET_TWINNET_{station}_sm_{depth[0]:.6f}_{depth[1]:.6f}_TestProbe_20110101_20111231.stm"
    out = directory / name
    out.write_bytes("\r".join([head, *body]).encode("latin-1"))
    return out


# --- an autoscaling Ray cluster that starts from zero, on this machine -----------------------------------

#: what a job must not upload as its working_dir (the .gitignore keeps .venv and .smray out too)
JOB_EXCLUDES = [".git", ".venv", ".smray", ".pytest_cache", ".hypothesis"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    import socket

    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def head_processes(temp_dir: str) -> set[Any]:
    """The processes (``psutil.Process``) of the Ray head whose session lives in ``temp_dir`` (their command
    lines name it), with all their descendants: the head's services, its workers and the worker nodes its
    fake autoscaler started."""
    import psutil

    found: set[Any] = set()
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in arg for arg in (p.info["cmdline"] or [])):
                found.add(p)
                found.update(p.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_head(temp_dir: str) -> None:
    """Stop exactly the processes of the head session in ``temp_dir`` (never a bare ``ray stop``, which stops
    every Ray on the machine): SIGTERM, then SIGKILL what is left after 5 s."""
    import psutil

    procs = head_processes(temp_dir)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs), timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def fake_autoscaling_cluster(repo: Path, *, bin_dir: Path, env: Mapping[str, str] | None = None
                             ) -> Iterator[dict[str, Any]]:
    """A Ray head with 0 CPUs started with ``--autoscaling-config <repo>/cluster/fake-autoscaler.yaml`` (Ray's
    fake multi-node provider, which starts worker nodes as local processes when work asks for them), every
    port on 127.0.0.1 chosen free, ``provider.gcs_address`` set to the head. Yields ``address`` (the job
    server), ``gcs``, ``temp_dir`` and ``env`` (for ``ray job submit`` and clients); on exit the head and
    its nodes are stopped by :func:`stop_head` and the session directory removed."""
    import shutil
    import subprocess
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    gcs, dash, client, agent, agent_grpc, metrics, env_agent = free_ports(7)
    base = dict(os.environ if env is None else env)
    base.pop("RAY_ADDRESS", None)
    run_env = {**base, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
               "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}",
               "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head_env = {**run_env, "PYTHONPATH": str(Path(repo) / "cluster")}  # the autoscaler imports fake_provider
    scaling = yaml.safe_load((Path(repo) / "cluster/fake-autoscaler.yaml").read_text())
    scaling["provider"]["gcs_address"] = f"127.0.0.1:{gcs}"  # the head is not on 6379
    scaling_file = Path(temp_dir) / "autoscaler.yaml"
    scaling_file.write_text(yaml.safe_dump(scaling))
    cmd = [str(Path(bin_dir) / "ray"), "start", "--head", "--port", str(gcs), "--node-ip-address", "127.0.0.1",
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
           "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
           "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
           "--runtime-env-agent-port", str(env_agent), "--num-cpus", "0", "--temp-dir", temp_dir,
           "--disable-usage-stats", "--autoscaling-config", str(scaling_file)]
    try:
        started = subprocess.run(cmd, env=head_env, capture_output=True, text=True, timeout=240)
        if started.returncode != 0:
            raise RuntimeError(f"ray start --head failed: {(started.stdout + started.stderr)[-2000:]}")
        yield {"address": f"http://127.0.0.1:{dash}", "env": run_env, "temp_dir": temp_dir,
               "gcs": f"127.0.0.1:{gcs}"}
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def job_client(address: str, timeout: float = 120.0) -> Any:
    """A ``JobSubmissionClient`` for ``address``, waiting up to ``timeout`` s for the dashboard to come up."""
    import time

    from ray.job_submission import JobSubmissionClient

    t0 = time.monotonic()
    while True:
        try:
            return JobSubmissionClient(address)
        except Exception:  # noqa: BLE001 - the dashboard comes up a few seconds after `ray start`
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(2)
