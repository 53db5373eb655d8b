"""Find the archive's files: list a URL prefix, recognise product names, index them by day.

The core is pure: :func:`index_tb` and :func:`index_ref` turn a list of names (paths or URLs)
into an index; :func:`list_files` is the one thin storage call (``fs.find``), and
:func:`discover_tb` / :func:`discover_ref` put the two together.

Brightness temperatures come in one of two layouts:

* JAXA L3 (``GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5``): one file per day, pass and band;
  the index maps ``(date, pass, band)`` → URL for the bands the cube uses (``06``, ``10``);
* NSIDC AE_Land3 (``AMSR_E_L3_DailyLand_V06_20110701.hdf``): one file per day holding both passes;
  the index maps ``date`` → URL;
* NSIDC-0302 / NSIDC-0301 flat binary (``ID2r1-AMSRE-D.252011182A.v03.06H``,
  ``ID2r3-AMSRE-ML2011182A.v03.06H``, each with a ``.TIM`` file per day and pass): one product,
  ``nsidc_flat``, whose index maps ``(date, pass, channel)`` → URL for 06H 06V 10H 10V and TIM.
  Each day uses one grid: the quarter-degree files when the day has any, else the global EASE
  ("ML") files, so an archive may hold 0302 for some days and 0301 for others; polar EASE files
  and the other channels are listed as not used.
* NSIDC AE_L2A half-orbit swaths (``AMSR_E_L2A_BrightnessTemperatures_V12_201107010054_A.hdf``):
  product ``nsidc_ae_l2a``, whose index maps ``(date, pass, YYYYMMDDhhmm)`` → URL (the name's
  date, pass and first-scan time). A day's files (:meth:`TbIndex.day`) are those named for it plus
  the previous day's files that start at or after 23:00 UTC, whose scans may run past midnight.

Reference files (ERA-Interim / ERA5 netCDF or GRIB) are named with a day (``…_20110701….nc``,
``…_2011-07-01.grib``, one day) or a month (``ERA-Interim_swvl1_201107.nc``, ``era5_2011_07.nc``,
every day of the month); the index maps ``date`` → URL, and a daily file wins over a monthly one
for its day. NCAR RDA ERA-Interim analyses (``ei.oper.an.sfc.regn128sc.2011070100``, GRIB1 without
extension, one analysis time per file) are grouped by day: ``parts`` lists a day's files and
ingest averages them. User-named MARS/CDS files need a date in the name (or
``ingest.ref_pattern``); a dateless CDS download name (``download.grib``) is not indexed. Names of the other products
(AMSR TBs, LPRM, ESA CCI, ISMN, the twin's truth files) are never taken for reference files.

Pattern overrides (``ingest.tb_pattern`` / ``ingest.ref_pattern``) are regular expressions searched
in a file's base name. A TB pattern names the day with a group ``date`` (YYYYMMDD) or groups
``year``/``month``/``day`` (or ``year``/``doy``); with groups ``pass_`` (A/D) and ``band`` (06/10)
the files are per-pass/band JAXA L3 HDF5 files, without them daily AE_Land3 files. A reference
pattern has a group ``date`` (YYYYMMDD, one day) or ``month`` (YYYYMM, the whole month), or groups
``year``/``month`` and optionally ``day``.

Two files for the same key are a *duplicate*: the one whose base name (then URL) sorts last is kept
(for the real products the later version / processing), the others are reported.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from smray.errors import SmrayError
from smray.formats.detect import PRODUCT_PATTERNS, basename
from smray.formats.nsidc_flat import EASE as FLAT_EASE, QD as FLAT_QD, parse_flat_name
from smray.formats.nsidc_l2a import STRADDLE_START_H, parse_l2a_name
from smray.storage import StorageConfig, filesystem, join

#: Bands of the JAXA L3 files the cube uses (6.9 and 10.7 GHz), in cube channel order.
TB_BANDS: tuple[str, ...] = ("06", "10")
PASSES: tuple[str, ...] = ("A", "D")
JAXA = "jaxa_l3_tb"
NSIDC = "nsidc_ae_land3"
NSIDC_FLAT = "nsidc_flat"
NSIDC_L2A = "nsidc_ae_l2a"
TB_PRODUCTS = (JAXA, NSIDC, NSIDC_FLAT, NSIDC_L2A)
#: Channels of the NSIDC-0301/0302 files the cube uses, plus the time file of each pass.
FLAT_CHANNELS: tuple[str, ...] = ("06H", "06V", "10H", "10V")
FLAT_KEYS: tuple[str, ...] = (*FLAT_CHANNELS, "TIM")

_REF_EXT = r"\.(?:nc|nc4|grb|grib|grb1|grib1|grb2|grib2)$"
#: The default reference name pattern: a stand-alone YYYYMMDD (one day) or YYYYMM (one month) in a
#: netCDF/GRIB name (ERA-Interim_swvl1_201107.nc, ERA-Interim_OPER_0001_AN_20000101_0000.grb, ...).
#: Dates may be written with - or _ between the parts (user-named MARS/CDS retrievals such as
#: era5_swvl1_2011-07.nc or erai_2011_07_01.grib).
REF_PATTERN = (r"(?<!\d)(?P<year>(?:19|20)\d\d)(?P<sep>[-_]?)(?P<month>0[1-9]|1[0-2])"
               r"(?:(?P=sep)(?P<day>0[1-9]|[12]\d|3[01]))?(?!\d).*" + _REF_EXT)
#: NCAR RDA ERA-Interim (ds627.0) surface analyses: GRIB1, no extension, one analysis time per
#: file (``ei.oper.an.sfc.regn128sc.YYYYMMDDHH``); a day's files are averaged into its daily mean.
RDA_PATTERN = PRODUCT_PATTERNS["era_rda"]
#: Products whose names the default reference pattern must not take for reference files.
OTHER_PRODUCTS = ("jaxa_l3_tb", "nsidc_ae_land3", "nsidc_0302", "nsidc_0301", "nsidc_ae_l2a", "lprm_l3", "esa_cci_sm",
                  "ismn_stm", "smray_twin_truth")
#: How many example names a report line shows.
EXAMPLES = 3


@dataclass(frozen=True)
class Duplicate:
    """Several files for one key: ``kept`` is used, ``ignored`` are not."""

    key: str
    kept: str
    ignored: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.key}: kept {basename(self.kept)}, ignored {', '.join(basename(u) for u in self.ignored)}"


@dataclass
class TbIndex:
    """The brightness-temperature files of an archive.

    ``files`` maps ``(date, pass, band)`` → URL for JAXA L3 (``product == "jaxa_l3_tb"``) and
    ``date`` → URL for AE_Land3 (``product == "nsidc_ae_land3"``). ``ignored`` are recognised files
    the cube does not use (other bands, the other product), ``unrecognised`` match no pattern.
    """

    url: str
    product: str | None
    files: dict = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def dates(self) -> set[dt.date]:
        """Days with at least one file."""
        return {k[0] if isinstance(k, tuple) else k for k in self.files}

    def day(self, date: dt.date) -> dict[str, dict[str, str]]:
        """The day's files: pass → band → URL for JAXA L3; ``{"*": {"*": url}}`` for AE_Land3
        (one file, both passes); empty when the day has no file."""
        if self.product == NSIDC:
            url = self.files.get(date)
            return {"*": {"*": url}} if url else {}
        out: dict[str, dict[str, str]] = {}
        if self.product == NSIDC_L2A:  # pass → first-scan stamp → URL, with the previous day's late files
            before = date - dt.timedelta(days=1)
            for (d, p, stamp), url in sorted(self.files.items(), key=lambda kv: str(kv[0])):
                late = d == before and int(stamp[8:10]) + int(stamp[10:12]) / 60.0 >= STRADDLE_START_H
                if d == date or late:
                    out.setdefault(p, {})[stamp] = url
            return out
        keys = FLAT_KEYS if self.product == NSIDC_FLAT else TB_BANDS
        for p in PASSES:
            bands = {b: self.files[(date, p, b)] for b in keys if (date, p, b) in self.files}
            if bands:
                out[p] = bands
        return out

    def missing_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        """Days in ``start..end`` without any file."""
        have = self.dates()
        return [d for d in _days(start, end) if d not in have]

    def incomplete_days(self, start: dt.date, end: dt.date) -> dict[dt.date, list[str]]:
        """JAXA L3: days in ``start..end`` with some but not all pass/band files → the missing
        ``"<pass> <band>"`` keys (e.g. ``["D 10"]``)."""
        if self.product not in (JAXA, NSIDC_FLAT):
            return {}
        keys = FLAT_KEYS if self.product == NSIDC_FLAT else TB_BANDS
        out: dict[dt.date, list[str]] = {}
        have = self.dates()
        for d in _days(start, end):
            if d in have:
                lost = [f"{p} {b}" for p in PASSES for b in keys if (d, p, b) not in self.files]
                if lost:
                    out[d] = lost
        return out

    def report(self, start: dt.date, end: dt.date) -> list[str]:
        """One line per finding, for the driver's log."""
        n = len([d for d in _days(start, end) if d in self.dates()])
        lines = [f"tb: {len(self.files)} {self.product or 'no'} files under {self.url}, "
                 f"{n}/{len(_days(start, end))} days of {start}..{end} present"]
        lines += _report_common("tb", self.missing_days(start, end), self.duplicates, self.unrecognised,
                                self.ignored)
        inc = self.incomplete_days(start, end)
        if inc:
            lines.append(f"tb: {len(inc)} incomplete day(s): "
                         + "; ".join(f"{d} lacks {', '.join(v)}" for d, v in list(inc.items())[:EXAMPLES])
                         + (" ..." if len(inc) > EXAMPLES else ""))
        return lines


@dataclass
class RefIndex:
    """The reference files of an archive: ``files`` maps date → URL (a monthly file is listed for
    every day of its month); ``monthly`` are the URLs that hold a whole month; ``parts`` maps the
    days assembled from one-analysis files (NCAR RDA) → all of that day's files (``files`` holds
    the first of them)."""

    url: str
    files: dict[dt.date, str] = field(default_factory=dict)
    monthly: set[str] = field(default_factory=set)
    parts: dict[dt.date, tuple[str, ...]] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def missing_days(self, start: dt.date, end: dt.date) -> list[dt.date]:
        return [d for d in _days(start, end) if d not in self.files]

    def report(self, start: dt.date, end: dt.date) -> list[str]:
        days = _days(start, end)
        n = len({self.files[d] for d in days if d in self.files})
        lines = [f"ref: {len(set(self.files.values()))} files under {self.url} "
                 f"({len(self.monthly)} monthly), {n} cover {start}..{end}"]
        return lines + _report_common("ref", self.missing_days(start, end), self.duplicates, self.unrecognised,
                                      self.ignored)


def _report_common(what: str, missing: list[dt.date], dups: list[Duplicate], unrecognised: list[str],
                   ignored: list[str]) -> list[str]:
    lines = []
    if missing:
        lines.append(f"{what}: {len(missing)} missing day(s): {_date_ranges(missing)}")
    if dups:
        lines.append(f"{what}: {len(dups)} duplicate key(s): "
                     + "; ".join(d.describe() for d in dups[:EXAMPLES]) + (" ..." if len(dups) > EXAMPLES else ""))
    if unrecognised:
        lines.append(f"{what}: {len(unrecognised)} unrecognised file(s), e.g. "
                     + ", ".join(basename(u) for u in unrecognised[:EXAMPLES]))
    if ignored:
        lines.append(f"{what}: {len(ignored)} recognised file(s) not used (other products or bands), e.g. "
                     + ", ".join(basename(u) for u in ignored[:EXAMPLES]))
    return lines


def _date_ranges(days: list[dt.date]) -> str:
    """'2011-07-03, 2011-07-05..2011-07-09' for a sorted list of days."""
    out: list[str] = []
    run: list[dt.date] = []
    for d in sorted(days):
        if run and (d - run[-1]).days == 1:
            run.append(d)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}")
        run = [d]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}")
    return ", ".join(out)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


# --------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------
def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise SmrayError(f"{where}: not a valid regular expression ({err})") from None


def _day_from(groups: dict[str, str | None]) -> dt.date | None:
    """The day named by the groups ``date`` (YYYYMMDD), ``year``/``month``/``day`` or ``year``/``doy``."""
    try:
        if groups.get("date"):
            return dt.datetime.strptime(groups["date"], "%Y%m%d").date()  # type: ignore[arg-type]
        if groups.get("year") and groups.get("doy"):
            return dt.date(int(groups["year"]), 1, 1) + dt.timedelta(days=int(groups["doy"]) - 1)  # type: ignore
        if groups.get("year") and groups.get("month") and groups.get("day"):
            return dt.date(int(groups["year"]), int(groups["month"]), int(groups["day"]))  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None
    return None


def _month_from(groups: dict[str, str | None]) -> tuple[int, int] | None:
    """(year, month) from a group ``month`` holding YYYYMM, or groups ``year`` and ``month``."""
    try:
        if groups.get("year") and groups.get("month") and not groups.get("day"):
            y, m = int(groups["year"]), int(groups["month"])  # type: ignore[arg-type]
        elif groups.get("month") and len(groups["month"]) == 6:  # type: ignore[arg-type]
            y, m = int(groups["month"][:4]), int(groups["month"][4:])  # type: ignore[index]
        else:
            return None
    except ValueError:
        return None
    return (y, m) if 1 <= m <= 12 else None


def _check_tb_pattern(rx: re.Pattern[str], where: str) -> str:
    """The product a TB override pattern stands for; SmrayError when it names no day."""
    names = set(rx.groupindex)
    if not ("date" in names or {"year", "month", "day"} <= names or {"year", "doy"} <= names):
        raise SmrayError(f"{where}: the pattern needs a named group (?P<date>YYYYMMDD) or groups year, month, day")
    has_pass = "pass_" in names or "pass" in names
    if has_pass != ("band" in names):
        raise SmrayError(f"{where}: per-pass files need both groups (?P<pass_>A|D) and (?P<band>06|10); "
                         f"daily files with both passes need neither")
    return JAXA if has_pass else NSIDC


def _check_ref_pattern(rx: re.Pattern[str], where: str) -> None:
    names = set(rx.groupindex)
    if not ("date" in names or "month" in names or {"year", "month"} <= names):
        raise SmrayError(f"{where}: the pattern needs a named group (?P<date>YYYYMMDD) or (?P<month>YYYYMM)")


def _pick(key: str, urls: list[str], dups: list[Duplicate]) -> str:
    """The URL kept for ``key``: the one whose (base name, URL) sorts last; the rest are reported."""
    ranked = sorted(set(urls), key=lambda u: (basename(u), u))
    if len(ranked) > 1:
        dups.append(Duplicate(key, ranked[-1], tuple(ranked[:-1])))
    return ranked[-1]


# --------------------------------------------------------------------------------------------
# Indexing (pure)
# --------------------------------------------------------------------------------------------
def index_tb(names: Iterable[str], pattern: str | None = None, *, url: str = "",
             where: str = "ingest.tb_pattern") -> TbIndex:
    """Index brightness-temperature files by name.

    ``names`` are paths or URLs; ``pattern`` overrides the products' own name patterns (see the
    module docstring). Without an override both JAXA L3 and AE_Land3 names are recognised; the
    product with more days is used and the other's files are listed as ``ignored``.
    """
    names = sorted(set(names))
    if pattern:
        rx = _compile(pattern, where)
        candidates = {_check_tb_pattern(rx, where): rx}
    else:
        candidates = {p: re.compile(PRODUCT_PATTERNS[p]) for p in (JAXA, NSIDC)}
    found: dict[str, dict] = {p: {} for p in candidates}
    ignored: list[str] = []
    unrecognised: list[str] = []
    flat: dict[dt.date, dict[str, list[tuple[tuple, str]]]] = {}
    for name in names:
        base = basename(name)
        l2a = None if pattern else parse_l2a_name(base)
        if l2a is not None:
            found.setdefault(NSIDC_L2A, {}).setdefault(
                (l2a["date"], l2a["pass_"], f"{l2a['start']:%Y%m%d%H%M}"), []).append(name)
            continue
        info = None if pattern else parse_flat_name(base)
        if info is not None:
            if info["area"] in ("ML", "D.25") and info["channel"] in FLAT_KEYS:
                flat.setdefault(info["date"], {}).setdefault(info["product"], []).append(
                    ((info["date"], info["pass_"], info["channel"]), name))
            else:
                ignored.append(name)
            continue
        for product, rx in candidates.items():
            m = rx.search(base)
            if not m:
                continue
            g = m.groupdict()
            day = _day_from(g)
            if day is None:
                continue
            if product == NSIDC:
                found[product].setdefault(day, []).append(name)
                break
            pass_ = (g.get("pass_") or g.get("pass") or "").upper()
            band = g.get("band") or ""
            band = f"{int(band):02d}" if band.isdigit() else band
            if g.get("period") not in (None, "01D"):  # JAXA monthly means (01M) are not daily TBs
                ignored.append(name)
            elif pass_ in PASSES and band in TB_BANDS:
                found[product].setdefault((day, pass_, band), []).append(name)
            else:
                ignored.append(name)
            break
        else:
            unrecognised.append(name)
    for day, by_product in flat.items():  # one grid per day: quarter-degree when present, else EASE
        use = FLAT_QD if FLAT_QD in by_product else FLAT_EASE
        for sub, entries in by_product.items():
            for key, name in entries:
                if sub == use:
                    found.setdefault(NSIDC_FLAT, {}).setdefault(key, []).append(name)
                else:
                    ignored.append(name)
    days = {p: {k[0] if isinstance(k, tuple) else k for k in f} for p, f in found.items()}
    product = max(found, key=lambda p: (len(days[p]), p == JAXA)) if any(found.values()) else None
    dups: list[Duplicate] = []
    files: dict = {}
    for key, urls in sorted(found.get(product, {}).items(), key=lambda kv: str(kv[0])) if product else []:
        label = " ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
        files[key] = _pick(label, urls, dups)
    for p, f in found.items():
        if p != product:
            ignored += [u for urls in f.values() for u in urls]
    return TbIndex(url=url, product=product, files=files, duplicates=dups, unrecognised=unrecognised,
                   ignored=sorted(ignored))


def index_ref(names: Iterable[str], pattern: str | None = None, *, url: str = "",
              where: str = "ingest.ref_pattern") -> RefIndex:
    """Index reference files by name: daily names (YYYYMMDD) cover their day, monthly names
    (YYYYMM) every day of their month; for a day with both, the daily file is used (reported as a
    duplicate), as is the sorted-last of several files of the same kind."""
    names = sorted(set(names))
    rx = _compile(pattern, where) if pattern else re.compile(REF_PATTERN)
    if pattern:
        _check_ref_pattern(rx, where)
    others = [] if pattern else [re.compile(PRODUCT_PATTERNS[p]) for p in OTHER_PRODUCTS]
    daily: dict[dt.date, list[str]] = {}
    monthly: dict[tuple[int, int], list[str]] = {}
    analyses: dict[dt.date, list[str]] = {}
    unrecognised: list[str] = []
    ignored: list[str] = []
    rda = None if pattern else re.compile(RDA_PATTERN)
    for name in names:
        if any(o.search(basename(name)) for o in others):
            ignored.append(name)
            continue
        m = rda.search(basename(name)) if rda else None
        if m and _day_from(m.groupdict()):
            analyses.setdefault(_day_from(m.groupdict()), []).append(name)  # type: ignore[arg-type]
            continue
        m = rx.search(basename(name))
        g = m.groupdict() if m else {}
        day = _day_from(g) if m else None
        month = _month_from(g) if m and day is None else None
        if day is not None:
            daily.setdefault(day, []).append(name)
        elif month is not None:
            monthly.setdefault(month, []).append(name)
        else:
            unrecognised.append(name)
    dups: list[Duplicate] = []
    files: dict[dt.date, str] = {}
    kept_monthly: set[str] = set()
    for (y, mo), urls in sorted(monthly.items()):
        chosen = _pick(f"{y:04d}-{mo:02d}", urls, dups)
        kept_monthly.add(chosen)
        for d in range(1, calendar.monthrange(y, mo)[1] + 1):
            files[dt.date(y, mo, d)] = chosen
    for day, urls in sorted(daily.items()):
        chosen = _pick(day.isoformat(), urls, dups)
        if day in files:
            dups.append(Duplicate(day.isoformat(), chosen, (files[day],)))
        files[day] = chosen
    parts: dict[dt.date, tuple[str, ...]] = {}
    for day, urls in sorted(analyses.items()):
        if day in files:  # a daily or monthly file covers the day: it wins
            dups.append(Duplicate(day.isoformat(), files[day], tuple(sorted(urls))))
            continue
        parts[day] = tuple(sorted(set(urls)))
        files[day] = parts[day][0]
    used = set(files.values())
    return RefIndex(url=url, files=files, monthly=kept_monthly & used, parts=parts, duplicates=dups,
                    unrecognised=unrecognised, ignored=ignored)


# --------------------------------------------------------------------------------------------
# Listing (the thin storage edge)
# --------------------------------------------------------------------------------------------
def list_files(url: str, storage: StorageConfig | None = None) -> list[str]:
    """Every file under the URL prefix, recursively, as URLs in the caller's spelling (a plain
    path prefix gives plain paths, ``s3://b/p`` gives ``s3://b/p/...``). A prefix that is a file
    lists that file; a missing prefix lists nothing."""
    fs, root = filesystem(url, storage)
    fs.invalidate_cache(root)  # s3fs caches listings; files may have arrived since
    try:
        if fs.isfile(root):
            return [url]
        found = fs.find(root, withdirs=False)
    except FileNotFoundError:
        return []
    base = root.rstrip("/")
    out = []
    for path in found:
        rel = path[len(base):].lstrip("/") if path.startswith(base) else basename(path)
        out.append(join(url, rel))
    return sorted(out)


def discover_tb(url: str, storage: StorageConfig | None = None, pattern: str | None = None) -> TbIndex:
    """List ``url`` recursively and index its brightness-temperature files (:func:`index_tb`)."""
    return index_tb(list_files(url, storage), pattern, url=url)


def discover_ref(url: str, storage: StorageConfig | None = None, pattern: str | None = None) -> RefIndex:
    """List ``url`` recursively and index its reference files (:func:`index_ref`)."""
    return index_ref(list_files(url, storage), pattern, url=url)
