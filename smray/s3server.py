"""An S3 endpoint on this machine: moto's server in a subprocess, with optional persistence.

Tests, demos and ``smray s3 serve`` use it in place of AWS. It listens on a loopback address only and
accepts any credentials (moto does not check them). moto keeps objects in memory, so with ``data_dir``
the objects are loaded from ``data_dir/<bucket>/<key…>`` at start, before the server listens (a
restarted endpoint never answers with half of its objects), and written back by :meth:`LocalS3.stop`
(or :meth:`LocalS3.snapshot`) as a whole new directory that replaces the old one, so an interrupted
snapshot never leaves half of one behind.

    with LocalS3(port=9000, data_dir="s3data") as s3:
        os.environ.update(s3.env())   # s3://… URLs now go to http://127.0.0.1:9000
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from smray.errors import SmrayError, first_line

#: Dummy credentials handed to clients; moto accepts any.
ACCESS_KEY_ID = "smray-local"
SECRET_ACCESS_KEY = "smray-local-secret"
REGION = "us-east-1"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_LOG_LINES = 40  # last lines of the server's output kept for error messages


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address (127.x, ::1) or ``localhost``; else a SmrayError."""
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise SmrayError(f"s3 server host {host!r} is not a loopback address; the local endpoint accepts any "
                     "credentials, so it listens on 127.0.0.1, ::1 or localhost only")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` (with SO_REUSEADDR, as werkzeug does)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalS3:
    """moto's S3 server on ``host:port`` (port 0: a free one), as a subprocess in its own process group.

    With ``data_dir``, objects persist across restarts in ``data_dir/<bucket>/<key…>``: loaded on
    :meth:`start`, written back on :meth:`stop`/:meth:`snapshot`. Keys ending in ``/`` (directory markers)
    are stored as directories; empty bucket directories become empty buckets.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, data_dir: str | Path | None = None) -> None:
        check_loopback(host)
        self.host = "127.0.0.1" if host == "localhost" else host
        self.requested_port = int(port)
        if not 0 <= self.requested_port <= 65535:
            raise SmrayError(f"s3 server port {port}: must be 0..65535")
        self.port = self.requested_port
        self.data_dir = Path(data_dir).absolute() if data_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=_LOG_LINES)
        self._reader: threading.Thread | None = None

    # --- addresses -----------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the server subprocess while it runs."""
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def env(self) -> dict[str, str]:
        """Standard AWS variables that point boto3/s3fs clients at this endpoint (dummy credentials)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running() else "stopped"
        return f"LocalS3({self.endpoint_url}, data_dir={self.data_dir}, {state})"

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalS3:
        """Start the server, wait until it answers HTTP, load ``data_dir`` into it. Returns self."""
        if self.running():
            return self
        self._kill()  # reap a server that died by itself
        attempts = 3 if self.requested_port == 0 else 1  # a picked port can be taken before moto binds it
        for attempt in range(attempts):
            port = self.requested_port or _free_port(self.host)
            if not _port_free(self.host, port):
                if self.requested_port:
                    raise SmrayError(f"s3 server: {self.host}:{port} is already in use")
                continue
            self.port = port
            try:
                self._spawn()
                self._wait_ready()
                break
            except _PortTaken:
                self._kill()
                if self.requested_port or attempt == attempts - 1:
                    raise SmrayError(f"s3 server: {self.host}:{port} is already in use") from None
            except BaseException:
                self._kill()
                raise
        else:  # every picked port was taken
            raise SmrayError(f"s3 server: no free port found on {self.host}")
        atexit.register(self._at_exit)  # a forgotten stop() must not leave the server running
        return self

    def stop(self) -> None:
        """Snapshot into ``data_dir`` (when set), then end the server process. Safe to call twice.
        A failed snapshot still ends the server, then raises (the previous snapshot is kept); so does
        a server that had died by itself, since what it held since the last snapshot is gone."""
        if self._proc is None:
            return
        try:
            code = self._proc.poll()
            if self.data_dir is not None and code is not None:
                raise SmrayError(f"s3 server on {self.endpoint_url} had exited (code {code}); objects written "
                                 f"since the last snapshot of {self.data_dir} are lost: {self._log_tail()}")
            if self.data_dir is not None:
                self.snapshot()
        finally:
            self._kill()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["MOTO_PORT"] = str(self.port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log.clear()
        args = [sys.executable, "-m", "smray.s3server", self.host, str(self.port)]
        if self.data_dir is not None:
            _recover(self.data_dir)
            args.append(str(self.data_dir))
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, close_fds=True,
        )
        self._reader = threading.Thread(target=self._drain, args=(self._proc,), daemon=True,
                                        name=f"smray-s3-log-{self.port}")
        self._reader.start()

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the pipe empty (so the server never blocks on its log) and the last lines for errors."""
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._log.append(raw.decode("utf-8", "replace").rstrip())

    def _log_tail(self, n: int = 5) -> str:
        if self._reader is not None and not self.running():
            self._reader.join(timeout=1.0)  # the rest of a dead server's output
        lines = [line for line in list(self._log) if line.strip()][-n:]
        return " | ".join(lines) if lines else "no output"

    def _wait_ready(self) -> None:
        assert self._proc is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        # the child loads data_dir before it listens: allow for that at a modest LOAD_BYTES_PER_S
        deadline = time.monotonic() + START_TIMEOUT_S + _tree_bytes(self.data_dir) / LOAD_BYTES_PER_S
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self._log_tail()
                if "already in use" in tail or "Errno 98" in tail:
                    raise _PortTaken()
                if code == _LOAD_FAILED and "smray-s3-load-error: " in tail:
                    raise SmrayError(f"s3 server: cannot load {self.data_dir} into {self.endpoint_url} "
                                     f"({tail.rsplit('smray-s3-load-error: ', 1)[-1]})")
                raise SmrayError(f"s3 server on {self.endpoint_url} exited with code {code} while starting: {tail}")
            try:
                with opener.open(self.endpoint_url + "/", timeout=2.0):
                    pass
                answered = True
            except urllib.error.HTTPError:
                answered = True  # any HTTP answer means something is serving
            except (urllib.error.URLError, OSError):
                answered = False
            # ... but it must be our child, not a server that took the port first (our child then exits)
            if answered and _listens(self._proc.pid, self.port) is not False:
                return
            if time.monotonic() > deadline:
                raise SmrayError(f"s3 server on {self.endpoint_url} did not answer within {START_TIMEOUT_S:.0f} s: "
                                 f"{self._log_tail()}")
            time.sleep(0.1)

    def _at_exit(self) -> None:
        try:
            self.stop()
        except Exception as err:
            print(f"smray: {err}", file=sys.stderr)

    def _kill(self) -> None:
        """End the subprocess by its PID: SIGTERM, wait, then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self._at_exit)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None
        if proc.stdout is not None:
            proc.stdout.close()

    # --- persistence ---------------------------------------------------------------------------
    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(connect_timeout=2, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"},
                          s3={"addressing_style": "path"}),
        )

    def snapshot(self) -> None:
        """Write every bucket and object into ``data_dir``, replacing its previous content as a whole.

        The objects go to a new sibling directory ``<data_dir>.tmp-…`` first; only when all are written is
        the old directory swapped out. On any failure the previous snapshot stays as it was."""
        if self.data_dir is None:
            raise SmrayError("s3 server: snapshot needs a data_dir")
        if self._proc is None:
            raise SmrayError(f"s3 server on {self.endpoint_url} is not running; nothing to snapshot")
        data_dir = self.data_dir
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = data_dir.with_name(f"{data_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            tmp.mkdir()
            self._dump_into(tmp)
            _fsync_dir(tmp)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, SmrayError):
                raise
            if not isinstance(err, Exception):
                raise
            raise SmrayError(f"s3 server: snapshot of {self.endpoint_url} into {data_dir} failed "
                             f"({type(err).__name__}: {first_line(err)}); the previous snapshot is kept") from None
        _swap_in(tmp, data_dir)

    def _dump_into(self, root: Path) -> None:
        client = self._client()
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            bucket_dir = root / name
            bucket_dir.mkdir()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    target = _key_path(bucket_dir, name, key)
                    if key.endswith("/"):
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_dir():
                        raise SmrayError(f"s3 server: cannot snapshot s3://{name}/{key}: the key is also a "
                                         "prefix of other keys, which a directory tree cannot hold")
                    body = client.get_object(Bucket=name, Key=key)["Body"]
                    try:
                        with open(target, "wb") as fh:
                            for chunk in iter(lambda: body.read(1 << 20), b""):
                                fh.write(chunk)
                            fh.flush()
                            os.fsync(fh.fileno())
                    finally:
                        body.close()


class _PortTaken(Exception):
    pass


def _tree_bytes(root: Path | None) -> int:
    if root is None or not root.is_dir():
        return 0
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def _load_dir(client: Any, data_dir: Path) -> None:
    """Upload ``data_dir/<bucket>/<key…>`` through ``client`` into an empty server, creating the buckets."""
    for bucket_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        bucket = bucket_dir.name
        client.create_bucket(Bucket=bucket)
        for dirpath, dirnames, filenames in os.walk(bucket_dir):
            dirnames.sort()
            rel = Path(dirpath).relative_to(bucket_dir).as_posix()
            prefix = "" if rel == "." else rel + "/"
            if prefix and not dirnames and not filenames:
                client.put_object(Bucket=bucket, Key=prefix, Body=b"")  # a directory marker
            for fname in sorted(filenames):
                with open(os.path.join(dirpath, fname), "rb") as fh:
                    client.put_object(Bucket=bucket, Key=prefix + fname, Body=fh)


def _child(host: str, port: int, data_dir: str | None) -> int:
    """The server process: load ``data_dir`` into moto's in-process backend through a private staging
    listener, and only then listen on ``host:port``. So a client never sees a half-loaded endpoint: a
    restarted server either refuses connections or holds every object it held before."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    if data_dir is not None and Path(data_dir).is_dir():
        staging = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
        staging.start()
        try:
            shost, sport = staging.get_host_and_port()
            probe = LocalS3(host=shost, port=sport)
            _load_dir(probe._client(), Path(data_dir))
        except Exception as err:  # noqa: BLE001 - reported to the parent in one line
            print(f"smray-s3-load-error: {type(err).__name__}: {first_line(err)}", flush=True)
            return _LOAD_FAILED
        finally:
            staging.stop()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"smray s3 endpoint listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


_LOAD_FAILED = 3
#: Bytes a second the start-up allows for loading ``data_dir`` (on top of :data:`START_TIMEOUT_S`).
LOAD_BYTES_PER_S = 20e6


def _listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (Linux /proc); None if unknown."""
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as fh:
                next(fh, None)
                for line in fh:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        fds = os.listdir(f"/proc/{pid}/fd")
    except (OSError, ValueError):
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def _key_path(bucket_dir: Path, bucket: str, key: str) -> Path:
    """Where ``key`` lives under ``bucket_dir``; refuses keys that would leave it or alias another key."""
    parts = key.rstrip("/").split("/") if key.endswith("/") else key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\0" in key:
        raise SmrayError(f"s3 server: cannot snapshot s3://{bucket}/{key!r}: the key is not a plain relative path")
    return bucket_dir.joinpath(*parts)


def _swap_in(new: Path, target: Path) -> None:
    """Make ``new`` be ``target``. The old one is renamed aside first and deleted last, so at every
    moment a complete snapshot exists under ``target`` or under ``<target>.old-…`` (see :func:`_recover`)."""
    if target.exists():
        old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
        os.rename(new, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, target)
        _fsync_dir(target.parent)


def _recover(target: Path) -> None:
    """After a crash during :func:`_swap_in`: bring back the old snapshot if the new one is not in place,
    and delete leftover temporary and old directories."""
    parent = target.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f"{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not target.exists() and olds:
        os.rename(olds.pop(), target)
    for leftover in olds + list(parent.glob(f"{target.name}.tmp-*")):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def serve(host: str = "127.0.0.1", port: int = 9000, data_dir: str | Path | None = None) -> int:
    """Run the local endpoint in the foreground until SIGINT/SIGTERM; snapshot into ``data_dir`` on the way
    out. Returns the process exit code (0 after a clean shutdown, 1 if the server died by itself)."""
    server = LocalS3(host=host, port=port, data_dir=data_dir)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread: rely on KeyboardInterrupt
            pass
    try:
        server.start()
        where = f", objects kept in {server.data_dir}" if server.data_dir is not None else " (in memory only)"
        print(f"smray S3 endpoint at {server.endpoint_url}{where}; any credentials are accepted; "
              f"Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.5) and server.running():
                pass
        except KeyboardInterrupt:
            pass
        if not server.running():
            message = f"smray S3 endpoint at {server.endpoint_url} exited by itself: {server._log_tail()}"
            try:
                server.stop()
            except SmrayError as err:
                message = str(err)
            print(message, file=sys.stderr, flush=True)
            return 1
        server.stop()
        print("smray S3 endpoint stopped" + (f"; snapshot written to {server.data_dir}"
                                            if server.data_dir is not None else ""), flush=True)
        return 0
    finally:
        server._kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["LocalS3", "serve", "check_loopback", "ACCESS_KEY_ID", "REGION"]


if __name__ == "__main__":  # the server process LocalS3 starts: python -m smray.s3server HOST PORT [DATA_DIR]
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
