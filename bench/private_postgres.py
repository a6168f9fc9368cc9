"""A throwaway PostgreSQL server of the chaos benchmark's own: `initdb` in a temporary folder, on a free port.

Its own server because the benchmark restarts it (`pg_ctl restart -m immediate`, a crash as far as every client
can tell) while pipeline runs are connected; doing that to the shared local server would break everyone else's
work. `initdb` refuses to run as root, so as root every server command runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local.server import free_port

SERVER_USER = "postgres"
"""The system user the server runs as when the benchmark runs as root (Debian's PostgreSQL packages create it)."""


@dataclass(frozen=True)
class PrivatePostgres:
    data_dir: Path
    port: int
    bin_dir: Path
    settings: tuple[tuple[str, str], ...] = ()  # more server settings, e.g. shared_preload_libraries

    @property
    def url(self) -> str:
        """The server's default database as its superuser; local logins are trusted."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")

    def restart_immediately(self) -> None:
        """Stop without a checkpoint, killing every session (what clients see of a crash), then start again."""
        self._pg_ctl("restart", "-m", "immediate")

    def _pg_ctl(self, *arguments: str) -> None:
        options = f"-p {self.port} -k {self.data_dir.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings)
        log = self.data_dir.parent / "server.log"
        command = [str(self.bin_dir / "pg_ctl"), *arguments, "-w", "-D", str(self.data_dir), "-l", str(log)]
        _run_as_server_user([*command, "-o", options])


@contextmanager
def private_postgres(settings: dict[str, str] | None = None) -> Iterator[PrivatePostgres]:
    """A started server for the block (with `settings` on its command line); stopped and its folder removed
    afterwards, also on Ctrl-C or an error."""
    workdir = Path(tempfile.mkdtemp(prefix="shipshape-chaos-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(workdir, SERVER_USER, SERVER_USER)
        server = PrivatePostgres(workdir / "data", free_port(), _bin_dir(), tuple((settings or {}).items()))
        _run_as_server_user(
            [str(server.bin_dir / "initdb"), "-D", str(server.data_dir), "-U", SERVER_USER, "-A", "trust", "--no-sync"]
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps initdb and pg_ctl out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        raise RuntimeError("no /usr/lib/postgresql/<version>/bin/initdb: install the PostgreSQL server package")
    return Path(found[-1]).parent


def _run_as_server_user(command: list[str]) -> None:
    prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, cwd="/")
