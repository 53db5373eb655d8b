"""The storage seam. One suite runs unchanged over every backend (a local directory, memory:// and the
local S3 endpoint), in the manner of fsspec's tests/abstract; then S3 configuration and secrets."""

from __future__ import annotations

import http.server
import os
import posixpath
import socket
import threading
import time
import uuid

import pytest

from smray import storage
from smray.config import Config, S3Config, StorageConfig, config_from_dict, dump_config
from smray.errors import SmrayError
from smray.storage import check_reachable, filesystem, is_empty, join, read_bytes, write_bytes

#: conftest's ``storage_root`` backends, with the S3 one carrying the ``s3`` marker.
BACKENDS = ["file", "memory", pytest.param("s3", marks=pytest.mark.s3)]

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
AWS_VARS = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"]


def _names(fs, path: str) -> list[str]:
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def _sibling_root(root: str) -> str:
    """A root that does not exist yet, on the same backend (for S3: in a bucket that does not exist)."""
    tag = uuid.uuid4().hex[:10]
    if root.startswith("s3://"):
        return f"s3://new-{tag}/out"
    if root.startswith("memory://"):
        return f"memory://new-{tag}/out"
    return os.path.join(os.path.dirname(root), f"new-{tag}", "out")


# --------------------------------------------------------------------------------------------
# The shared suite
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("storage_root", BACKENDS, indirect=True)
class TestBackend:
    def test_round_trip(self, storage_root):
        data = bytes(range(256)) * 1000 + b"\x00tail"
        fs, path = filesystem(join(storage_root, "day.bin"))
        write_bytes(fs, path, data)
        assert read_bytes(fs, path) == data
        assert fs.size(path) == len(data)

    def test_empty_object(self, storage_root):
        fs, path = filesystem(join(storage_root, "empty.bin"))
        write_bytes(fs, path, b"")
        assert read_bytes(fs, path) == b""

    def test_nested_paths(self, storage_root):
        fs, path = filesystem(join(storage_root, "2011", "07", "01", "tb.nc"))
        write_bytes(fs, path, b"nested")
        fs2, path2 = filesystem(join(storage_root, "2011/07/01/tb.nc"))
        assert read_bytes(fs2, path2) == b"nested"
        root_fs, root = filesystem(storage_root)
        assert _names(root_fs, root) == ["2011"]
        assert _names(root_fs, join(root, "2011", "07", "01")) == ["tb.nc"]

    def test_overwrite_replaces_whole_object(self, storage_root):
        fs, path = filesystem(join(storage_root, "x.bin"))
        write_bytes(fs, path, b"a much longer first version")
        write_bytes(fs, path, b"short")
        assert read_bytes(fs, path) == b"short"
        root_fs, root = filesystem(storage_root)
        assert _names(root_fs, root) == ["x.bin"]  # no temporary names left behind

    def test_read_missing_raises(self, storage_root):
        fs, path = filesystem(join(storage_root, "missing.bin"))
        with pytest.raises(FileNotFoundError):
            read_bytes(fs, path)

    def test_is_empty(self, storage_root):
        assert is_empty(storage_root)  # does not exist yet
        check_reachable(storage_root, create=True)
        assert is_empty(storage_root)  # exists (a directory on disk), holds nothing
        fs, path = filesystem(join(storage_root, "sub", "a.bin"))
        write_bytes(fs, path, b"1")
        assert not is_empty(storage_root)
        assert not is_empty(join(storage_root, "sub"))
        assert not is_empty(join(storage_root, "sub", "a.bin"))  # a single object is not empty
        assert is_empty(join(storage_root, "other"))

    def test_listing(self, storage_root):
        for rel in ["b.bin", "a.bin", "sub/c.bin", "sub/deeper/d.bin"]:
            fs, path = filesystem(join(storage_root, rel))
            write_bytes(fs, path, rel.encode())
        fs, root = filesystem(storage_root)
        assert _names(fs, root) == ["a.bin", "b.bin", "sub"]
        assert _names(fs, join(root, "sub")) == ["c.bin", "deeper"]
        found = sorted(posixpath.relpath(p, root) for p in fs.find(root))
        assert found == ["a.bin", "b.bin", "sub/c.bin", "sub/deeper/d.bin"]
        assert fs.isdir(join(root, "sub")) and fs.isfile(join(root, "a.bin"))

    def test_join_and_urls(self, storage_root):
        url = join(storage_root, "a", "b.nc")
        if "://" in storage_root:
            assert url == storage_root + "/a/b.nc"
            assert join(storage_root + "/", "a/b.nc") == url
        else:
            assert url == os.path.join(storage_root, "a", "b.nc")
        fs, path = filesystem(url)
        write_bytes(fs, path, b"u")
        again_fs, again = filesystem(storage.to_url(fs, path))  # a URL of fs names the same object
        assert read_bytes(again_fs, again) == b"u"

    def test_check_reachable_creates_root(self, storage_root):
        new = _sibling_root(storage_root)
        check_reachable(new, create=True)
        check_reachable(new)  # now it is there
        fs, path = filesystem(new)
        if storage_root.startswith("s3://"):
            assert fs.exists(path.split("/", 1)[0])  # the bucket was created
        elif "://" not in storage_root:
            assert os.path.isdir(new)
        assert is_empty(new)
        fs, path = filesystem(join(new, "f.bin"))
        write_bytes(fs, path, b"written")
        assert read_bytes(fs, path) == b"written"


def test_plain_path_and_file_url_are_the_same(tmp_path):
    fs1, p1 = filesystem(str(tmp_path / "x" / "y.bin"))
    fs2, p2 = filesystem(f"file://{tmp_path}/x/y.bin")
    assert p1 == p2 == str(tmp_path / "x" / "y.bin")
    write_bytes(fs1, p1, b"same")
    assert read_bytes(fs2, p2) == b"same"


# --------------------------------------------------------------------------------------------
# S3 specifics
# --------------------------------------------------------------------------------------------
@pytest.mark.s3
def test_check_reachable_missing_bucket(s3_server):
    missing = f"s3://missing-{uuid.uuid4().hex[:10]}/root"
    with pytest.raises(SmrayError) as err:
        check_reachable(missing)
    assert "does not exist" in str(err.value) and s3_server.endpoint_url in str(err.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("create", [False, True])
def test_unreachable_endpoint_fails_fast_in_one_line(create, monkeypatch):
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    cfg = StorageConfig(s3=S3Config(endpoint_url=endpoint, key="AKIDUNREACHABLE", secret=SECRET))
    start = time.monotonic()
    with pytest.raises(SmrayError) as err:
        check_reachable("s3://some-bucket/archive", cfg, create=create)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert endpoint in msg and "cannot reach" in msg  # not "bucket does not exist"
    assert "\n" not in msg and SECRET not in msg and "AKIDUNREACHABLE" not in msg


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with an empty ListObjectsV2 result and records its Authorization header."""

    seen: list[str] = []
    body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
            b'2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>'
            b'<IsTruncated>false</IsTruncated></ListBucketResult>')

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    """A fake S3 endpoint on 127.0.0.1 that records the credentials each request was signed with."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_env_credentials_reach_s3fs_and_config_overrides(recorder, monkeypatch):
    endpoint, seen = recorder
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    opts = storage.s3_options(S3Config())
    assert opts["client_kwargs"] == {"endpoint_url": endpoint, "region_name": "eu-west-1"}
    assert "key" not in opts and "secret" not in opts  # left to botocore's chain, which reads the env

    bucket = f"env-{uuid.uuid4().hex[:8]}"
    fs, path = filesystem(f"s3://{bucket}/x")
    assert fs.ls(bucket, refresh=True) == []
    assert "Credential=AKIDFROMENVIRONMENT/" in seen[-1] and "/eu-west-1/s3/" in seen[-1]

    # config values win over the environment
    cfg = StorageConfig(s3=S3Config(key="AKIDFROMCONFIG", secret="config-secret", region="ap-south-1"))
    fs, path = filesystem(f"s3://{bucket}/x", cfg)
    assert fs.ls(bucket, refresh=True) == []
    assert "Credential=AKIDFROMCONFIG/" in seen[-1] and "/ap-south-1/s3/" in seen[-1]


def test_config_endpoint_overrides_env(recorder, monkeypatch):
    endpoint, seen = recorder
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDANY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    cfg = StorageConfig(s3=S3Config(endpoint_url=endpoint))
    assert storage.endpoint_description(cfg.s3) == endpoint
    fs, _ = filesystem("s3://somewhere-else/x", cfg)
    n = len(seen)
    fs.ls("somewhere-else", refresh=True)
    assert len(seen) > n


def test_s3_options_from_config():
    cfg = S3Config(endpoint_url="http://127.0.0.1:9", region="us-west-2", key="K", secret=SECRET,
                   connect_timeout_s=1.5, read_timeout_s=7.0, max_attempts=3)
    opts = storage.s3_options(cfg)
    assert opts["key"] == "K" and opts["secret"] == SECRET
    assert opts["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-west-2"}
    assert opts["config_kwargs"] == {"connect_timeout": 1.5, "read_timeout": 7.0,
                                     "retries": {"max_attempts": 3, "mode": "standard"}}
    fs, _ = filesystem("s3://b/k", StorageConfig(s3=cfg))
    assert fs.retries == storage.S3FS_RETRIES


def test_secrets_stay_hidden():
    cfg = config_from_dict({"storage": {"s3": {"key": "AKIDHIDDENKEY", "secret": SECRET,
                                               "endpoint_url": "http://127.0.0.1:9"}}})
    assert cfg.storage.s3.secret == SECRET
    for text in (repr(cfg), str(cfg), repr(cfg.storage), repr(cfg.storage.s3), dump_config(cfg),
                 storage.endpoint_description(cfg.storage.s3)):
        assert SECRET not in text and "AKIDHIDDENKEY" not in text
    assert isinstance(cfg, Config)


# --------------------------------------------------------------------------------------------
# Local atomicity
# --------------------------------------------------------------------------------------------
def test_local_write_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out" / "day.nc"
    fs, path = filesystem(str(target))

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_bytes(fs, path, b"new content")
    assert not target.exists()
    assert os.listdir(target.parent) == []  # no temporary file left either

    monkeypatch.undo()
    write_bytes(fs, path, b"old content")
    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_bytes(fs, path, b"new content that never lands")
    assert target.read_bytes() == b"old content"  # the previous version is untouched
    assert os.listdir(target.parent) == ["day.nc"]


def test_local_write_relative_path(tmp_path, monkeypatch):
    from fsspec.implementations.local import LocalFileSystem

    monkeypatch.chdir(tmp_path)
    write_bytes(LocalFileSystem(), "bare.bin", b"here")
    assert (tmp_path / "bare.bin").read_bytes() == b"here"


def test_unreachable_endpoint_errors_are_transient_not_bad_input() -> None:
    """Connection and timeout errors (botocore's, aiohttp's, the OS's, also when wrapped) mean "retry
    later"; a reader's complaint about the data does not."""
    import botocore.exceptions as bce

    from smray.storage import is_transient

    down = bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert is_transient(down)
    assert is_transient(bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ConnectionRefusedError(111, "refused"))
    try:
        try:
            raise down
        except bce.EndpointConnectionError as inner:
            raise OSError("fsspec wrapped it") from inner
    except OSError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(SmrayError("x.h5: truncated HDF5 file"))
    assert not is_transient(ValueError("bad dtype"))
    assert not is_transient(FileNotFoundError("s3://b/k"))
