"""The embedded S3 endpoint: lifecycle by handle, S3 protocol, persistence and its atomicity, serve()."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smray import s3server
from smray.errors import SmrayError
from smray.s3server import LocalS3, serve

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[1]


def _client(server: LocalS3):
    import boto3

    env = server.env()
    return boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint_url, region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(root: Path) -> dict[str, bytes]:
    """relative path → bytes for every file under ``root`` (directories as '/'-suffixed, empty)."""
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel + "/" if p.is_dir() else rel] = b"" if p.is_dir() else p.read_bytes()
    return out


#: nested keys, a binary body with every byte value, an empty object, a directory marker
OBJECTS = {
    "archive-one": {
        "top.txt": b"hello\n",
        "2011/07/01/amsre_tb.nc": bytes(range(256)) * 300,
        "2011/07/02/empty.bin": b"",
        "markers/only/": b"",
    },
    "archive-two": {"a/b/c/d/e.json": b'{"k": 1}'},
}


def _put_all(server: LocalS3) -> None:
    client = _client(server)
    for bucket, objs in OBJECTS.items():
        client.create_bucket(Bucket=bucket)
        for key, body in objs.items():
            client.put_object(Bucket=bucket, Key=key, Body=body)
    client.create_bucket(Bucket="empty-bucket")


def _get_all(server: LocalS3) -> dict[str, dict[str, bytes]]:
    client = _client(server)
    out: dict[str, dict[str, bytes]] = {}
    for b in client.list_buckets()["Buckets"]:
        out[b["Name"]] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            for obj in page.get("Contents", []):
                out[b["Name"]][obj["Key"]] = client.get_object(Bucket=b["Name"], Key=obj["Key"])["Body"].read()
    return out


def test_start_stop_by_handle():
    server = LocalS3().start()
    pid = server.pid
    assert pid is not None and _alive(pid)
    assert server.endpoint_url == f"http://127.0.0.1:{server.port}" and server.port > 0
    server.stop()
    assert not _alive(pid)  # terminated and reaped, not left as a zombie
    assert server.pid is None and not server.running()
    with socket.socket() as sock:  # the port is released
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))
    server.stop()  # idempotent


def test_context_manager_and_env():
    with LocalS3() as server:
        env = server.env()
        pid = server.pid
        assert env["AWS_ENDPOINT_URL"] == server.endpoint_url
        assert env["AWS_DEFAULT_REGION"] == "us-east-1"
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
        assert env["AWS_SECRET_ACCESS_KEY"] not in repr(server)
    assert not _alive(pid)


def test_endpoint_speaks_s3(s3_server):
    import s3fs

    client = _client(s3_server)
    client.create_bucket(Bucket="speaks-s3")
    client.put_object(Bucket="speaks-s3", Key="dir/obj.bin", Body=b"\x00\x01payload")
    assert client.get_object(Bucket="speaks-s3", Key="dir/obj.bin")["Body"].read() == b"\x00\x01payload"

    env = s3_server.env()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server.endpoint_url}, key=env["AWS_ACCESS_KEY_ID"],
                           secret=env["AWS_SECRET_ACCESS_KEY"], skip_instance_cache=True)
    assert fs.ls("speaks-s3") == ["speaks-s3/dir"]
    assert fs.ls("speaks-s3/dir") == ["speaks-s3/dir/obj.bin"]
    assert fs.cat_file("speaks-s3/dir/obj.bin") == b"\x00\x01payload"


def test_persistence_across_restart(tmp_path):
    data = tmp_path / "s3data"
    first = LocalS3(data_dir=data).start()
    _put_all(first)
    first.stop()

    on_disk = _tree(data)
    assert on_disk["archive-one/2011/07/01/amsre_tb.nc"] == OBJECTS["archive-one"]["2011/07/01/amsre_tb.nc"]
    assert on_disk["archive-two/a/b/c/d/e.json"] == b'{"k": 1}'
    assert "empty-bucket/" in on_disk and "archive-one/markers/only/" in on_disk
    assert [p.name for p in tmp_path.iterdir()] == ["s3data"]  # no temporary or old directories left

    second = LocalS3(data_dir=data).start()
    try:
        assert _get_all(second) == {**OBJECTS, "empty-bucket": {}}  # byte-identical, same keys
        _client(second).delete_object(Bucket="archive-two", Key="a/b/c/d/e.json")
        _client(second).put_object(Bucket="archive-one", Key="new.txt", Body=b"new")
    finally:
        second.stop()
    on_disk = _tree(data)
    assert "archive-two/a/b/c/d/e.json" not in on_disk  # a snapshot replaces, it does not merge
    assert on_disk["archive-one/new.txt"] == b"new"


def test_snapshot_keeps_previous_when_server_died(tmp_path):
    data = tmp_path / "s3data"
    server = LocalS3(data_dir=data).start()
    client = _client(server)
    client.create_bucket(Bucket="kept-bucket")
    client.put_object(Bucket="kept-bucket", Key="a/first.bin", Body=b"first")
    server.snapshot()
    before = _tree(data)
    client.put_object(Bucket="kept-bucket", Key="a/second.bin", Body=b"second")

    os.kill(server.pid, signal.SIGKILL)  # the server dies before the next snapshot
    server._proc.wait(timeout=10)
    with pytest.raises(SmrayError) as err:
        server.snapshot()
    assert str(err.value).count("\n") == 0 and "previous snapshot is kept" in str(err.value)
    assert _tree(data) == before
    with pytest.raises(SmrayError, match="lost"):
        server.stop()  # says that what it held since the last snapshot is gone
    server.stop()
    assert _tree(data) == before
    assert [p.name for p in tmp_path.iterdir()] == ["s3data"]


def test_snapshot_failing_midway_keeps_previous(tmp_path, monkeypatch):
    data = tmp_path / "s3data"
    server = LocalS3(data_dir=data).start()
    try:
        _put_all(server)
        server.snapshot()
        before = _tree(data)
        _client(server).put_object(Bucket="archive-one", Key="later.bin", Body=b"later")

        calls = []
        real_fsync = os.fsync

        def failing_fsync(fd):  # the disk fills up after two objects are written
            calls.append(fd)
            if len(calls) > 2:
                raise OSError(28, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(s3server.os, "fsync", failing_fsync)
        with pytest.raises(SmrayError, match="No space left on device"):
            server.snapshot()
        assert len(calls) > 2
        assert _tree(data) == before
        assert [p.name for p in tmp_path.iterdir()] == ["s3data"]  # the half-written copy is gone
        monkeypatch.undo()
    finally:
        server.stop()
    assert _tree(data)["archive-one/later.bin"] == b"later"


def test_crash_during_swap_is_recovered(tmp_path):
    """A crash between the two renames of the swap leaves only ``<dir>.old-…``: start() puts it back."""
    data = tmp_path / "s3data"
    old = tmp_path / "s3data.old-1234abcd"
    (old / "saved-bucket" / "x").mkdir(parents=True)
    (old / "saved-bucket" / "x" / "obj").write_bytes(b"saved")
    (tmp_path / "s3data.tmp-deadbeef" / "half").mkdir(parents=True)  # an unfinished snapshot
    with LocalS3(data_dir=data) as server:
        assert _get_all(server) == {"saved-bucket": {"x/obj": b"saved"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3data"]


def test_second_server_on_same_port_refused():
    with LocalS3() as first:
        with pytest.raises(SmrayError) as err:
            LocalS3(port=first.port).start()
        msg = str(err.value)
        assert "\n" not in msg and "already in use" in msg and str(first.port) in msg
        _client(first).list_buckets()  # the first one is unharmed


def test_port_taken_between_check_and_bind(monkeypatch):
    """Another server answering on the port must not be mistaken for ours."""
    with LocalS3() as first:
        monkeypatch.setattr(s3server, "_port_free", lambda host, port: True)  # taken after the check
        with pytest.raises(SmrayError, match="already in use"):
            LocalS3(port=first.port).start()
        picks = iter([first.port])  # port 0: the picked port is taken, so another is picked
        real_pick = s3server._free_port
        monkeypatch.setattr(s3server, "_free_port", lambda host: next(picks, None) or real_pick(host))
        with LocalS3() as second:
            assert second.port != first.port
            _client(second).create_bucket(Bucket="second-only")
        assert "second-only" not in [b["Name"] for b in _client(first).list_buckets()["Buckets"]]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::", ""])
def test_non_loopback_host_refused(host):
    with pytest.raises(SmrayError, match="loopback"):
        LocalS3(host=host)
    with pytest.raises(SmrayError, match="loopback"):
        serve(host=host, port=_free_port())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_accepted(host):
    assert s3server.check_loopback(host) == host


def test_server_dying_at_start_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'moto: something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(s3server.sys, "executable", str(fake))
    with pytest.raises(SmrayError) as err:
        LocalS3().start()
    assert "code 3" in str(err.value) and "something broke" in str(err.value) and "\n" not in str(err.value)


def test_serve_answers_sigint_with_snapshot(tmp_path):
    port = _free_port()
    data = tmp_path / "served"
    code = f"import sys; from smray.s3server import serve; sys.exit(serve('127.0.0.1', {port}, {str(data)!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()  # blocks until the endpoint is up
        assert f"http://127.0.0.1:{port}" in line and "any credentials" in line, line + proc.stderr.read()
        server = LocalS3(port=port)  # a handle for the env/endpoint only; never started
        client = _client(server)
        client.create_bucket(Bucket="served-bucket")
        client.put_object(Bucket="served-bucket", Key="deep/key/obj.bin", Body=b"served bytes")

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert (data / "served-bucket" / "deep" / "key" / "obj.bin").read_bytes() == b"served bytes"
    assert s3server.SECRET_ACCESS_KEY not in line + out + err
    deadline = time.monotonic() + 5  # the moto child is gone too: its port is free again
    while not s3server._port_free("127.0.0.1", port):
        assert time.monotonic() < deadline, "moto server still holds the port after serve() returned"
        time.sleep(0.1)


def test_serve_refuses_port_in_use():
    with LocalS3() as first:
        with pytest.raises(SmrayError, match="already in use"):
            serve("127.0.0.1", first.port, None)


def test_a_restarted_endpoint_never_answers_with_half_of_its_objects(tmp_path):
    """The server loads data_dir before it listens: a client polling the port while it starts gets
    either a refused connection or the whole bucket, never a part of it (an outage in test_faults
    relies on this, as clients of a real endpoint do)."""
    import threading

    import botocore.exceptions
    from botocore.config import Config

    data = tmp_path / "s3data"
    keys = [f"day/{i:04d}.bin" for i in range(400)]
    for key in keys:
        (data / "many" / key).parent.mkdir(parents=True, exist_ok=True)
        (data / "many" / key).write_bytes(key.encode())
    port = _free_port()
    server = LocalS3(port=port, data_dir=data)
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        import boto3

        client = boto3.session.Session().client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="x",
            aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
        while not done.is_set():
            try:
                listed = sum(page.get("KeyCount", 0) for page in
                             client.get_paginator("list_objects_v2").paginate(Bucket="many"))
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError):
                continue
            except botocore.exceptions.ClientError as err:  # NoSuchBucket: the endpoint answered early
                seen.append(-1 if "NoSuchBucket" in str(err) else -2)
                continue
            seen.append(listed)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        server.start()
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        poller.join(timeout=30)
        server.stop()
    assert seen and set(seen) == {len(keys)}, sorted(set(seen))


def test_a_data_dir_that_cannot_be_loaded_is_one_line(tmp_path):
    data = tmp_path / "s3data"
    (data / "Not_A_Valid_Bucket!").mkdir(parents=True)
    (data / "Not_A_Valid_Bucket!" / "key.txt").write_text("x")
    with pytest.raises(SmrayError) as err:
        LocalS3(data_dir=data).start()
    text = str(err.value)
    assert text.startswith("s3 server: cannot load ") and str(data) in text and "\n" not in text, text
    assert (data / "Not_A_Valid_Bucket!" / "key.txt").read_text() == "x"  # the snapshot is untouched
