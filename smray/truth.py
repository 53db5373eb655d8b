"""The twin's truth on another grid: where the twin keeps it, and reading it onto a cube's or map
store's cells by nearest cell centre (the twin and the cube share the grid when the cube was ingested
from the twin; a cell farther than half a cell is a one-line SmrayError).

Layout under the twin's archive root (written by :mod:`smray.synth.twin`)::

    truth/YYYY/MM/smray_twin_truth_YYYYMMDD.nc   sm_true, t_eff, ... (pass, lat, lon)
    truth/static.nc                              the static fields (smray.synth.fields.StaticFields)

Used by the paper experiment (truth at the test patches, the physical retrieval's ancillary data),
the physical predictor and the evaluation. Example::

    truth = TwinTruth.on_cube("s3://bucket/twin", "s3://bucket/cube.zarr", storage)
    passes, fields = truth.day(dt.date(2011, 7, 31), ("sm_true",))   # fields["sm_true"]: (pass, lat, lon)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from smray.errors import SmrayError
from smray.storage import StorageConfig, filesystem, join, read_bytes

#: the static fields, under the archive root
STATIC_PATH = "truth/static.nc"
#: the twin archive's manifest (start, days, grid, seed, files), at its root
MANIFEST = "twin.json"
#: a cell of the other grid may lie this many of its cells from the twin's nearest centre
TOLERANCE_CELLS = 0.51


def truth_path(date: dt.date) -> str:
    """The day's truth file, under the archive root."""
    return f"truth/{date:%Y}/{date:%m}/smray_twin_truth_{date:%Y%m%d}.nc"


def open_netcdf(url: str, storage: StorageConfig | None) -> Any:
    """The whole netCDF file at ``url`` as a loaded ``xarray.Dataset`` (SmrayError when absent)."""
    import xarray as xr

    fs, path = filesystem(url, storage)
    try:
        data = read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: twin truth file not found (is --twin the twin archive root?)") from None
    return xr.open_dataset(io.BytesIO(data), engine="h5netcdf").load()


def nearest(values: np.ndarray, targets: np.ndarray, what: str, tol: float) -> np.ndarray:
    """Index into ``values`` of the value nearest to each of ``targets`` (SmrayError beyond ``tol``)."""
    values = np.asarray(values, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    idx = np.abs(values[None, :] - targets[:, None]).argmin(axis=1)
    far = np.abs(values[idx] - targets) > tol
    if far.any():
        raise SmrayError(f"twin truth: the cube's {what} {float(targets[far][0]):g} is not on the twin's "
                         f"grid (is the twin the archive the cube was ingested from?)")
    return idx


def _wrap(lon: Any) -> np.ndarray:
    return ((np.asarray(lon, np.float64) + 180.0) % 360.0) - 180.0


class TwinTruth:
    """The truth files of the twin at ``twin_url`` mapped onto the cells ``lat`` × ``lon`` (degrees,
    cell centres) of a grid of ``res`` degrees. The mapping is taken from the first file read."""

    def __init__(self, twin_url: str, storage: StorageConfig | None, lat: np.ndarray, lon: np.ndarray,
                 res: float) -> None:
        self.root, self.storage = twin_url, storage
        self.lat, self.lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        self.tol = TOLERANCE_CELLS * float(res)
        self.ri: np.ndarray | None = None
        self.ci: np.ndarray | None = None
        self._static: dict[str, np.ndarray] | None = None  #: the static fields, read once

    @classmethod
    def on_cube(cls, twin_url: str, cube_url: str, storage: StorageConfig | None) -> TwinTruth:
        """The truth on the cells of the cube at ``cube_url``."""
        from smray import cube as cubemod

        cst = cubemod.read_static(cube_url, storage)
        return cls(twin_url, storage, cst["lat"], cst["lon"], float(cubemod.info(cube_url, storage).grid.res))

    def _on_grid(self, ds: Any, values: Any) -> np.ndarray:
        """``values`` (..., twin lat, twin lon) → float64 (..., lat, lon)."""
        if self.ri is None:
            self.ri = nearest(ds["lat"].values, self.lat, "latitude", self.tol)
            self.ci = nearest(_wrap(ds["lon"].values), _wrap(self.lon), "longitude", self.tol)
        return np.asarray(values, np.float64)[..., self.ri, :][..., self.ci]

    def day(self, date: dt.date, variables: Sequence[str] = ("sm_true",)
            ) -> tuple[list[str], dict[str, np.ndarray]]:
        """(the file's passes, each of ``variables`` as float64 (pass, lat, lon)) of the day ``date``."""
        url = join(self.root, truth_path(date))
        ds = open_netcdf(url, self.storage)
        for v in variables:
            if v not in ds:
                raise SmrayError(f"{url}: no variable {v!r} (not a twin truth file)")
        return [str(p) for p in ds["pass"].values], {v: self._on_grid(ds, ds[v].values) for v in variables}

    def sm_true(self, date: dt.date) -> dict[str, np.ndarray]:
        """pass → ``sm_true`` (lat, lon) m³/m³ of the day ``date``."""
        passes, fields = self.day(date, ("sm_true",))
        return {p: fields["sm_true"][i] for i, p in enumerate(passes)}

    def static(self) -> dict[str, np.ndarray]:
        """The static fields (every :class:`smray.synth.fields.StaticFields` field) as float64 (lat, lon),
        read from the twin on the first call; a new dict of the same arrays on every call."""
        from smray.synth.fields import StaticFields

        if self._static is not None:
            return dict(self._static)

        url = join(self.root, STATIC_PATH)
        ds = open_netcdf(url, self.storage)
        names = [f.name for f in dataclasses.fields(StaticFields)]
        absent = [n for n in names if n not in ds]
        if absent:
            raise SmrayError(f"{url}: static field {absent[0]!r} missing")
        self._static = {n: self._on_grid(ds, ds[n].values) for n in names}
        return dict(self._static)
