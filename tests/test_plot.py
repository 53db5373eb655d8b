"""smray plot: a quick-look PNG of any cube variable (swvl1, tb:PASS:CHANNEL, qc:PASS) or map store
variable on one day, locally and on the local S3; bad --var/--date/store are one-line CLI errors.
The cube (smray.testing.write_smooth_cube) is written with the cube module's own writer (no Ray
needed), the map store with the smray-maps-1 builder smray.testing.write_map_store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from smray.cli import main
from smray.plot import plot_map
from smray.testing import PNG_SIGNATURE, write_map_store, write_smooth_cube

START = dt.date(2011, 7, 1)
DAYS = 2
BBOX = (-20.0, 30.0, 20.0, 60.0)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    """A two-day cube of smooth fields on a 1° window of Europe, and a map store on its grid."""
    root = tmp_path_factory.mktemp("plot")
    url = write_smooth_cube(str(root / "cube.zarr"), start=START, days=DAYS, res=1.0, bbox=BBOX)
    maps = str(root / "maps.zarr")
    write_map_store(maps, cube_url=url, kind="cnn", seed=0)
    return {"cube": url, "maps": maps, "root": str(root)}


def check_png(path: Path | bytes) -> np.ndarray:
    raw = path if isinstance(path, bytes) else Path(path).read_bytes()
    assert raw.startswith(PNG_SIGNATURE) and len(raw) > 10_000
    import io

    img = mpimg.imread(io.BytesIO(raw), format="png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert float(img[..., :3].std()) > 0.05  # a drawn map, not a blank canvas
    return img


@pytest.mark.parametrize("var", [None, "tb:A:06H", "tb:D:10V", "qc:D", "land_fraction"])
def test_plot_cube_variables(stores: dict[str, str], var: str | None, tmp_path: Path) -> None:
    out = tmp_path / "cube.png"
    assert plot_map(stores["cube"], "2011-07-02", str(out), var=var) == str(out)
    check_png(out)


@pytest.mark.parametrize("var", [None, "soil_moisture_asc", "soil_moisture_uncertainty"])
def test_plot_map_store_variables(stores: dict[str, str], var: str | None, tmp_path: Path) -> None:
    out = tmp_path / "maps.png"
    argv = ["plot", stores["maps"], "--date", "2011-07-01", "--out", str(out)] + (["--var", var] if var else [])
    assert main(argv) == 0
    check_png(out)


def test_plot_reads_and_writes_the_local_s3(stores: dict[str, str], s3_bucket: str, capsys) -> None:
    import s3fs

    from smray.storage import s3_options

    opts = s3_options()
    maps = f"{s3_bucket}/maps.zarr"
    write_map_store(maps, cube_url=stores["cube"], kind="svr", seed=0, storage_options=opts)
    out = f"{s3_bucket}/figures/q.png"
    assert main(["plot", maps, "--date", "2011-07-02", "--var", "soil_moisture_desc", "--out", out]) == 0
    assert f"plot: wrote {out}" in capsys.readouterr().out
    check_png(s3fs.S3FileSystem(**opts).cat_file(out))


@pytest.mark.parametrize("args, expected", [
    (["--var", "nope"], "--var: 'nope' is not a map variable of"),
    (["--var", "tb"], "--var: tb needs pass and channel after ':' (e.g. tb:A:06H)"),
    (["--var", "tb:X:06H"], "--var: pass 'X' is not in"),
    (["--var", "tb:A:37V"], "--var: channel '37V' is not in"),
    (["--date", "2011-07-09"], "--date: 2011-07-09 is not in the time axis (2011-07-01..2011-07-02)"),
    (["--date", "2011-02-30"], "--date: '2011-02-30' is not a valid date"),
    (["--store", "absent.zarr"], "no Zarr store here"),
])
def test_bad_plot_inputs_are_one_line_errors(stores: dict[str, str], args: list[str], expected: str, tmp_path: Path,
                                             capsys) -> None:
    store, date, extra = stores["cube"], "2011-07-01", []
    it = iter(args)
    for flag in it:
        value = next(it)
        if flag == "--store":
            store = str(tmp_path / value)
        elif flag == "--date":
            date = value
        else:
            extra += [flag, value]
    out = tmp_path / "x.png"
    capsys.readouterr()
    assert main(["plot", store, "--date", date, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smray: error: ") and err.count("\n") == 1 and expected in err, err
    assert not out.exists()


def test_a_directory_that_is_not_a_smray_store_is_refused(stores: dict[str, str], tmp_path: Path, capsys) -> None:
    import zarr

    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w", zarr_format=3).attrs["title"] = "someone else's"
    assert main(["plot", str(other), "--date", "2011-07-01", "--out", str(tmp_path / "x.png")]) == 2
    assert "not a smray cube or map store (attribute smray_format is None)" in capsys.readouterr().err
