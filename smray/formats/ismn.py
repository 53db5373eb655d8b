"""ISMN in-situ soil moisture in the "header + values" ``.stm`` format (and its zip archives).

One ``.stm`` file holds one sensor at one depth. Its first line is the header::

    network  network  station  lat  lon  elevation_m  depth_from_m  depth_to_m  sensor

followed by one observation per line::

    YYYY/MM/DD HH:MM  value_m3/m3  ismn_flag  provider_flag

Line endings may be CR only (old Mac style, as in the ISMN test archive), LF or CRLF. The ISMN flag
can be a comma-joined list (``D04,D05``); ``G`` (good) and ``U`` (unchecked, older archives) count
as good, any other code (C01–C03 out of range, D01–D10 frozen/spike/plateau…, M missing) as suspect.
The provider flag is sometimes absent. File names carry the depths with more digits than the header
(``…_sm_0.050800_0.050800_…``); those are preferred.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import NamedTuple

import numpy as np
import pandas as pd

from smray.errors import SmrayError
from smray.storage import filesystem, read_bytes

__all__ = ["read_ismn_stm", "read_ismn_zip", "daily_means", "IsmnStation", "GOOD_FLAGS"]

#: ISMN quality codes counted as good.
GOOD_FLAGS = frozenset({"G", "U"})

_NAME = re.compile(r"^(?P<network>[^_]+)_(?P<network2>[^_]+)_(?P<station>.+)_(?P<variable>[a-z_]+?)_"
                   r"(?P<depth_from>-?\d+\.\d+)_(?P<depth_to>-?\d+\.\d+)_(?P<sensor>.+)_"
                   r"(?P<start>\d{8})_(?P<end>\d{8})\.stm$")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d*)?([eE][-+]?\d+)?$")


class IsmnStation(NamedTuple):
    """One sensor record: ``metadata`` (see :func:`read_ismn_stm`) and the observations ``data``."""

    metadata: dict
    data: pd.DataFrame


def read_ismn_stm(source: str | os.PathLike | bytes, *, name: str | None = None) -> tuple[dict, pd.DataFrame]:
    """Read one ISMN header+values ``.stm`` file.

    ``source`` is a path, an fsspec URL or the file's bytes (then ``name`` names it in messages and
    in the metadata). Returns ``(metadata, data)``:

    * metadata: ``network``, ``station``, ``lat``, ``lon`` (degrees), ``elevation`` (m),
      ``depth_from``, ``depth_to`` (m below surface), ``sensor``, ``variable`` (``sm``), ``file``,
      ``n_obs``;
    * data: DataFrame indexed by ``time`` (UTC, naive datetime64) with ``soil_moisture`` (m³/m³,
      float64), ``ismn_flag`` and ``provider_flag`` (str, '' when absent) and ``good`` (bool: every
      ISMN flag code is G or U).

    Raises :class:`SmrayError` naming the file for an unreadable header or data line.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, fname = bytes(source), name or "<bytes>"
    else:
        url = os.fspath(source)
        raw, fname = _read(url), name or url
    return _parse_stm(raw, fname)


def read_ismn_zip(path: str | os.PathLike) -> list[IsmnStation]:
    """Every ``.stm`` file in an ISMN header+values zip archive, in archive order.

    ``path`` is a local path or fsspec URL. Each entry is an :class:`IsmnStation`
    ``(metadata, data)`` as from :func:`read_ismn_stm`; ``metadata['file']`` is the member name.
    """
    url = os.fspath(path)
    raw = _read(url)
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as err:
        raise SmrayError(f"{url}: not a readable zip archive ({err})") from None
    stations: list[IsmnStation] = []
    with zf:
        members = [m for m in zf.namelist() if m.lower().endswith(".stm") and not m.endswith("/")]
        if not members:
            raise SmrayError(f"{url}: no ISMN .stm files in the archive")
        for member in members:
            try:
                data = zf.read(member)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise SmrayError(f"{url}: cannot extract {member} ({err})") from None
            meta, df = _parse_stm(data, member)
            stations.append(IsmnStation(meta, df))
    return stations


def daily_means(df: pd.DataFrame, good_only: bool = True) -> pd.DataFrame:
    """Daily (UTC) means of ``soil_moisture`` from :func:`read_ismn_stm` data.

    With ``good_only`` only rows whose flags are all G/U count. Returns a DataFrame indexed by the
    day at 00:00 (``time``) with ``soil_moisture`` (m³/m³) and ``n_obs`` (observations averaged);
    days without a usable observation are left out.
    """
    use = df[df["good"]] if good_only else df
    use = use[np.isfinite(use["soil_moisture"])]
    grouped = use["soil_moisture"].groupby(use.index.floor("D"))
    out = pd.DataFrame({"soil_moisture": grouped.mean(), "n_obs": grouped.size().astype(np.int64)})
    out.index.name = "time"
    return out


# ----------------------------------------------------------------------------------------------
def _read(url: str) -> bytes:
    try:
        fs, path = filesystem(url)
        return read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: file not found") from None
    except IsADirectoryError:
        raise SmrayError(f"{url}: is a directory, not an ISMN file") from None


def _parse_header(line: str, fname: str) -> dict:
    tokens = line.split()
    # network network station… lat lon elevation depth_from depth_to sensor…: find the 5 numbers
    for i in range(3, len(tokens) - 4):
        if all(_NUMBER.match(t) for t in tokens[i:i + 5]):
            lat, lon, elev, d0, d1 = (float(t) for t in tokens[i:i + 5])
            if not (-90 <= lat <= 90 and -180 <= lon <= 360):
                break
            return {"network": tokens[0], "station": " ".join(tokens[2:i]), "lat": lat, "lon": lon,
                    "elevation": elev, "depth_from": d0, "depth_to": d1,
                    "sensor": " ".join(tokens[i + 5:])}
    raise SmrayError(f"{fname}: not an ISMN header+values file (header line {line.strip()[:80]!r} is not "
                     f"'network network station lat lon elevation depth_from depth_to sensor')")


def _parse_stm(raw: bytes, fname: str) -> tuple[dict, pd.DataFrame]:
    text = raw.decode("latin-1")
    lines = text.splitlines()  # CR, LF and CRLF alike
    if not lines or not lines[0].strip():
        raise SmrayError(f"{fname}: empty ISMN file")
    meta = _parse_header(lines[0], fname)
    base = os.path.basename(fname.rstrip("/"))
    m = _NAME.match(base)
    meta["variable"] = m["variable"] if m else "sm"
    if m:  # the file name keeps more digits of the depths than the header
        meta["depth_from"], meta["depth_to"] = float(m["depth_from"]), float(m["depth_to"])
    meta["file"] = fname

    body = "\n".join(ln for ln in lines[1:] if ln.strip())
    cols = ["date", "clock", "soil_moisture", "ismn_flag", "provider_flag"]
    if body:
        try:
            df = pd.read_csv(io.StringIO(body), sep=r"\s+", header=None, names=cols,
                             dtype={"date": str, "clock": str, "ismn_flag": str, "provider_flag": str},
                             keep_default_na=False, engine="c")
        except (ValueError, pd.errors.ParserError) as err:
            raise SmrayError(f"{fname}: unreadable data lines ({str(err).splitlines()[0][:120]})") from None
        try:
            time = pd.to_datetime(df["date"] + " " + df["clock"], format="%Y/%m/%d %H:%M")
            values = pd.to_numeric(df["soil_moisture"]).astype(np.float64)
        except (ValueError, TypeError) as err:
            bad = _first_bad_line(df)
            raise SmrayError(f"{fname}: bad data line {bad!r} (expected 'YYYY/MM/DD HH:MM value "
                             f"ismn_flag provider_flag'; {str(err).splitlines()[0][:80]})") from None
    else:
        df = pd.DataFrame({c: pd.Series(dtype=str) for c in cols})
        time, values = pd.to_datetime(pd.Series([], dtype=str)), pd.Series([], dtype=np.float64)
    flags = df["ismn_flag"].fillna("").astype(str)
    good = flags.map(lambda f: bool(f) and set(f.split(",")) <= GOOD_FLAGS).astype(bool)
    out = pd.DataFrame({"soil_moisture": values.to_numpy(), "ismn_flag": flags.to_numpy(),
                        "provider_flag": df["provider_flag"].fillna("").astype(str).to_numpy(),
                        "good": good.to_numpy()},
                       index=pd.DatetimeIndex(time, name="time"))
    meta["n_obs"] = int(len(out))
    return meta, out


def _first_bad_line(df: pd.DataFrame) -> str:
    for row in df.itertuples(index=False):
        try:
            pd.to_datetime(f"{row.date} {row.clock}", format="%Y/%m/%d %H:%M")
            float(row.soil_moisture)
        except (ValueError, TypeError):
            return f"{row.date} {row.clock} {row.soil_moisture}"
    return "?"
