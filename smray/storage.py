"""The one storage seam: every URL smray touches goes through :func:`filesystem`.

``s3://``, ``file://``, plain paths and ``memory://`` are the same code path (``fsspec.url_to_fs``).
S3 endpoint and credentials come from :class:`S3Config` (the config's ``storage.s3``) or the standard AWS
variables; they are passed to s3fs only and never logged or written.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from smray.errors import SmrayError, first_line

SECRET = "secret"  #: dataclass field metadata key: a value never written out or shown


@dataclass(frozen=True)
class S3Config:
    """Where S3 is and how to authenticate. Unset values fall back to the standard AWS variables
    (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_DEFAULT_REGION``) and then to boto's own chain (instance profile, ~/.aws)."""

    endpoint_url: str | None = None  #: e.g. http://127.0.0.1:9000 for the local endpoint
    region: str | None = None  #: AWS region name
    key: str | None = field(default=None, repr=False, metadata={SECRET: True})  #: access key id
    secret: str | None = field(default=None, repr=False, metadata={SECRET: True})  #: secret access key
    anon: bool = False  #: anonymous (unsigned) access, for public buckets
    connect_timeout_s: float = 5.0  #: TCP connect timeout per request attempt
    read_timeout_s: float = 60.0  #: read timeout per request attempt
    max_attempts: int = 4  #: attempts per request (botocore standard retry mode, backoff between)


@dataclass(frozen=True)
class StorageConfig:
    """Object-storage settings shared by every stage."""

    s3: S3Config = field(default_factory=S3Config)


#: Rounds of s3fs's own retry loop (each round is up to ``S3Config.max_attempts`` botocore attempts).
S3FS_RETRIES = 2
#: botocore attempts of the :func:`check_reachable` probe.
PROBE_ATTEMPTS = 2


def protocol(url: str) -> str:
    """'s3', 'file', 'memory', … for a URL; plain paths are 'file'."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def local_path(url: str) -> str | None:
    """The local filesystem path of a plain path or ``file://`` URL (as given, not made absolute);
    None for any other protocol."""
    if protocol(url) != "file":
        return None
    return url[len("file://"):] if url.startswith("file://") else url


def s3_options(cfg: S3Config | None = None) -> dict[str, Any]:
    """Keyword arguments for ``s3fs.S3FileSystem`` from the config, falling back to the standard
    AWS variables. Contains credentials when configured: never log or persist the result."""
    cfg = cfg or S3Config()
    endpoint = cfg.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = cfg.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    client_kwargs: dict[str, Any] = {}
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if region:
        client_kwargs["region_name"] = region
    opts: dict[str, Any] = {
        "client_kwargs": client_kwargs,
        "config_kwargs": {
            "connect_timeout": cfg.connect_timeout_s,
            "read_timeout": cfg.read_timeout_s,
            "retries": {"max_attempts": cfg.max_attempts, "mode": "standard"},
        },
        "anon": cfg.anon,
    }
    if cfg.key and cfg.secret:
        opts["key"] = cfg.key
        opts["secret"] = cfg.secret
    return opts


def resolve_storage(cfg: StorageConfig | None = None) -> StorageConfig:
    """The storage config with the S3 endpoint, region and credentials taken from the standard AWS
    variables where the config leaves them unset. The driver resolves once and hands the result
    to Ray tasks, so workers started before the variables were set (or on other nodes, where an
    instance profile supplies credentials) use the same endpoint. Holds secrets: never log it."""
    import dataclasses

    cfg = cfg or StorageConfig()
    s3 = cfg.s3
    env = os.environ.get
    key, secret = s3.key, s3.secret
    if not (key and secret) and env("AWS_ACCESS_KEY_ID") and env("AWS_SECRET_ACCESS_KEY"):
        key, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
    s3 = dataclasses.replace(
        s3,
        endpoint_url=s3.endpoint_url or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL"),
        region=s3.region or env("AWS_DEFAULT_REGION") or env("AWS_REGION"),
        key=key, secret=secret)
    return dataclasses.replace(cfg, s3=s3)


def endpoint_description(cfg: S3Config | None = None) -> str:
    """Where S3 requests go, for messages (no credentials)."""
    opts = s3_options(cfg)
    return opts["client_kwargs"].get("endpoint_url", "AWS S3")


def storage_options(url: str, cfg: StorageConfig | None = None) -> dict[str, Any]:
    """fsspec storage options for ``url``."""
    if protocol(url) in ("s3", "s3a"):
        return s3_options((cfg or StorageConfig()).s3)
    return {}


def filesystem(url: str, cfg: StorageConfig | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for ``url``. Local paths are made absolute."""
    if protocol(url) == "file":
        url = os.path.abspath(local_path(url))
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url, cfg))
    if _is_s3(fs):
        # s3fs retries timeouts on top of botocore's attempts (its class default: 5 rounds); keep the
        # total bounded. Not a constructor option: extra S3FileSystem kwargs go to the botocore session.
        fs.retries = S3FS_RETRIES
    return fs, path


def join(url: str, *parts: str) -> str:
    """Join path parts onto a URL with '/'."""
    return posixpath.join(url.rstrip("/"), *parts) if "://" in url else os.path.join(url, *parts)


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A URL for a path of ``fs`` (``fs.unstrip_protocol``)."""
    return fs.unstrip_protocol(path)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole object. Objects on S3/memory appear whole or not at all; local files are written
    to a temporary name beside the target and renamed, so a reader never sees half a file."""
    parent = posixpath.dirname(path)
    if isinstance(fs, LocalFileSystem):
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        if parent and protocol(fs.unstrip_protocol(parent)) == "memory":
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(path, data)


def read_bytes(fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    return fs.cat_file(path)


def _is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def check_reachable(url: str, cfg: StorageConfig | None = None, *, create: bool = False) -> None:
    """Fail fast with one line when ``url``'s storage cannot be reached (S3 endpoint down, bucket
    missing, bad credentials). With ``create``, a missing S3 bucket or local directory is created.
    The S3 probe makes at most :data:`PROBE_ATTEMPTS` attempts, so a dead endpoint fails in seconds."""
    if protocol(url) in ("s3", "s3a"):
        cfg = cfg or StorageConfig()
        probe = dataclasses.replace(cfg.s3, max_attempts=min(cfg.s3.max_attempts, PROBE_ATTEMPTS))
        cfg = dataclasses.replace(cfg, s3=probe)
    fs, path = filesystem(url, cfg)
    if not _is_s3(fs):
        if create and isinstance(fs, LocalFileSystem):
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as err:
                raise SmrayError(f"{url}: cannot create output directory ({err.strerror})") from None
            if not os.access(path, os.W_OK):
                raise SmrayError(f"{url}: output directory is not writable")
        return
    bucket = path.split("/", 1)[0]
    where = endpoint_description(cfg.s3 if cfg else None)
    try:
        # Not fs.exists(bucket): s3fs answers False for *any* error, so a dead endpoint would be
        # reported as a missing bucket. A one-key listing raises FileNotFoundError only for
        # NoSuchBucket, needs the same permission as reading the archive and costs one request.
        try:
            fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
        except FileNotFoundError:
            if not create:
                raise SmrayError(f"{url}: bucket {bucket!r} does not exist at {where}") from None
            _create_bucket(fs, bucket)
            fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
    except SmrayError:
        raise
    except PermissionError as err:
        raise SmrayError(f"{url}: access denied at {where} ({first_line(err)})") from None
    except Exception as err:  # botocore/aiohttp connection errors have no common base
        raise SmrayError(f"{url}: cannot reach S3 endpoint {where} ({type(err).__name__}: "
                         f"{first_line(err)})") from None


def _create_bucket(fs: fsspec.AbstractFileSystem, bucket: str) -> None:
    """Create ``bucket`` in the client's region. Not ``fs.mkdir``: s3fs sends the region as a
    LocationConstraint even for us-east-1, which S3 rejects (InvalidLocationConstraint)."""
    client = getattr(fs, "s3", None)  # connected by the probe that found the bucket missing
    region = fs.client_kwargs.get("region_name") or getattr(getattr(client, "meta", None), "region_name", None)
    params: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        fs.call_s3("create_bucket", **params)
    except OSError:
        try:  # created meanwhile by someone else (BucketAlreadyOwnedByYou)?
            fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
        except Exception:
            pass
        else:
            return
        raise
    finally:
        fs.invalidate_cache(bucket)


#: exception type names that mean "the storage could not be reached", not "the data are bad"
_TRANSIENT_NAMES = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError",
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "ClientConnectorError",
    "ServerDisconnectedError", "ClientOSError", "TimeoutError", "ProxyConnectionError",
})


def is_transient(err: BaseException) -> bool:
    """True when ``err`` (or what it was raised from) says the storage endpoint was unreachable or
    timed out: worth retrying later, never a reason to record the input as bad."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if any(t.__name__ in _TRANSIENT_NAMES for t in type(cur).__mro__):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def is_empty(url: str, cfg: StorageConfig | None = None) -> bool:
    """True when nothing is stored under ``url``."""
    fs, path = filesystem(url, cfg)
    fs.invalidate_cache(path)  # s3fs caches listings; another process may have written since
    try:
        if not fs.exists(path):
            return True
        if fs.isfile(path):
            return False
        return len(fs.ls(path, detail=False)) == 0
    except FileNotFoundError:
        return True
