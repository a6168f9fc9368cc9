"""The local Prefect API kept for the next command: started by one `shipshape run` or `make demo`, reused by the
ones after it on the same Prefect home, and stopped once no command has used it for a while.

Starting Prefect's API costs a command 3-5 s (its server imports alone take 3 s on the 2-core machine), more
than a one-day run's own work; the second command of a working session should not pay it again. This is the
Gradle daemon's answer: the server outlives the command that started it, for `SHIPSHAPE_LOCAL_API_IDLE_SECONDS`
(default 600; 0 = stop it with each command, as a temporary API).

The record `local-api.env` in the Prefect home names the server (URL, password, Prefect version) and is its
lease: each command using the server holds a shared `flock` on the record for its whole life (the kernel drops it
when the command ends, even killed), and the server stops once it could take the lock exclusively for the idle
time. It deletes the record while holding that lock, so a command either got its lease before (and is served to
the end) or finds no record and starts a new server. The password keeps other local users out of the runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from runtime import recorded_api
from runtime.recorded_api import RecordedApi, record_fields
from shipshape.errors import ConfigurationError
from shipshape.names import PLATFORM_SECRET_VARIABLES

IDLE_SETTING = "SHIPSHAPE_LOCAL_API_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
RECORD = "local-api.env"
LOG = "local-api.log"
IDLE_CHECK_SECONDS = 1.0
_DECIDING = "local-api.lock"  # one command at a time reuses or starts the home's server
_RECORD_SETTING = "SHIPSHAPE_LOCAL_API_RECORD"  # tells the server process where to write its record


def idle_seconds() -> float:
    """How long the kept API waits for another command; 0 means no kept API."""
    raw = os.environ.get(IDLE_SETTING, "")
    if not raw:
        return DEFAULT_IDLE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigurationError(
            f"{IDLE_SETTING}={raw!r} is not a number of seconds: set it to how long the local Prefect API waits for "
            f"the next command (default {DEFAULT_IDLE_SECONDS:g}), or 0 to stop it with each command"
        )
    return seconds


def prefect_home() -> Path:
    """Prefect's home as Prefect will resolve it, read before Prefect is imported (PREFECT_HOME or ~/.prefect)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser().resolve()


def prefect_version() -> str:
    """The installed Prefect, from its metadata (Prefect itself takes 1.5 s to import): a server of another
    version is never reused."""
    return version("prefect")


@dataclass(frozen=True)
class KeptApi:
    """A kept server this command holds a lease on (`lease` stays open until the process ends)."""

    url: str
    auth_string: str
    lease: int


def deciding(home: Path) -> int:
    """Take the home's decision lock (released when the returned descriptor is closed)."""
    home.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(home / _DECIDING, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


def leased(home: Path) -> KeptApi | None:
    """The recorded server with a lease taken on it, or None: no record, a record deleted meanwhile or one of
    another Prefect version. The caller checks that it answers (`release` if not)."""
    try:
        lease = os.open(home / RECORD, os.O_RDONLY)
    except FileNotFoundError:
        return None
    fcntl.flock(lease, fcntl.LOCK_SH)  # waits while the server decides whether it is idle
    fields = record_fields(os.read(lease, 65536).decode())
    named = RecordedApi.from_fields(fields)
    if named and os.fstat(lease).st_nlink > 0 and fields.get("PREFECT_VERSION") == prefect_version():
        return KeptApi(named.url, named.auth_string, lease)
    os.close(lease)
    return None


def release(api: KeptApi) -> None:
    os.close(api.lease)


def lease_new(home: Path, port: str, auth_string: str) -> KeptApi:
    """The lease on a server this command just started (it wrote its record before printing its port)."""
    lease = os.open(home / RECORD, os.O_RDONLY)
    fcntl.flock(lease, fcntl.LOCK_SH)
    return KeptApi(f"http://127.0.0.1:{port}/api", auth_string, lease)


def server_environment(home: Path, idle: float) -> dict[str, str]:
    """A kept server's whole environment: the command's without the platform's settings and keys (a server that
    outlives the command has no use for its warehouse URLs or PII key), plus its password, record and idle time."""
    inherited = {
        name: value for name, value in os.environ.items()
        if not name.startswith("SHIPSHAPE_") and name not in PLATFORM_SECRET_VARIABLES
    }  # fmt: skip
    return inherited | {
        "PREFECT_SERVER_API_AUTH_STRING": secrets.token_urlsafe(24),
        _RECORD_SETTING: str(home / RECORD),
        IDLE_SETTING: repr(idle),
    }


def stop_recorded(home: Path) -> str | None:
    """Stop the home's kept server now (its URL), or None when none is recorded; commands it serves lose it.

    Its process is signalled only while it answers with the recorded password, so a stale record (the server was
    killed, its PID since reused) never stops another process: the record is deleted and that is all."""
    record = home / RECORD
    try:
        fields = record_fields(record.read_text())
    except FileNotFoundError:
        return None
    record.unlink(missing_ok=True)
    named, pid = RecordedApi.from_fields(fields), fields.get("PID", "")
    if named and pid.isdigit() and int(pid) > 0 and named.answers():
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.kill(int(pid), signal.SIGTERM)
    return fields.get("PREFECT_API_URL", "")


def record_of_this_server() -> Path | None:
    """Server side: where to write the record, when this process is a kept server."""
    path = os.environ.get(_RECORD_SETTING)
    return Path(path) if path else None


def write_record(record: Path, port: int) -> None:
    """Server side: name this server, its Prefect version and its process."""
    api = RecordedApi(f"http://127.0.0.1:{port}/api", os.environ["PREFECT_SERVER_API_AUTH_STRING"])
    recorded_api.write_record(record, api, PREFECT_VERSION=prefect_version(), PID=str(os.getpid()))


def stop_when_idle(record: Path) -> None:
    """Server side (a thread): stop once no command has held a lease for the idle time, or at once without
    leases when another server's record replaced this one's (nobody can find this one any more)."""
    idle = float(os.environ[IDLE_SETTING])
    lease = os.open(record, os.O_RDONLY)
    own = os.fstat(lease).st_ino
    idle_since: float | None = None
    while True:
        time.sleep(IDLE_CHECK_SECONDS)
        try:
            fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            idle_since = None
            continue
        now = time.monotonic()
        idle_since = now if idle_since is None else idle_since
        superseded = _inode(record) != own
        if superseded or now - idle_since >= idle:
            if not superseded:
                record.unlink(missing_ok=True)
            # The exclusive lock is kept until the process ends: a command that opened the record just before
            # the unlink waits, then sees it deleted and starts its own server.
            os.kill(os.getpid(), signal.SIGTERM)
            return
        fcntl.flock(lease, fcntl.LOCK_UN)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
