"""A private Docker engine for the image tests, a stand-in `python:3.11-slim` base, and the project image build.

No engine runs here and no registry can be reached, so the tests start Debian's dockerd themselves (its layer
cache in a persistent folder outside the repo, so CI runs on one machine stay warm), build the base image the
Dockerfile expects from Debian packages, and build the production image with the same `make image` CI uses.
The proxy CA and the pip index settings the build needs live only in the stand-in base, never in the Dockerfile.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Debian's docker.io: dockerd lives in /usr/sbin; /usr/bin/docker is a 20.10 client with BuildKit built in
# (the newer client in /usr/local/bin has no buildx, so BuildKit builds fail with it).
DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/bin/docker")
DEFAULT_DATA_ROOT = Path("/var/tmp/shipshape-docker")
CACHE_DIR = Path("/var/tmp/shipshape-cache")
STANDIN_TAG = "python:3.11-slim"
STANDIN_SUITE = "bookworm"  # Python 3.11, like python:3.11-slim
STANDIN_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
ENGINE_START_TIMEOUT = 60.0
ENGINE_STOP_TIMEOUT = 30.0
BUILD_TIMEOUT = 1800.0
FIX_HINT = "run .ci/run (it installs Debian's docker.io and mmdebstrap) or `apt-get install docker.io mmdebstrap`"


# Where a Docker engine already runs and registries are reachable (a GitHub-hosted runner, a laptop), point the
# tests at it instead: they then start and stop no engine, and pull python:3.11-slim rather than build a stand-in.
EXTERNAL_ENGINE_VARIABLE = "SHIPSHAPE_TEST_DOCKER_HOST"


@dataclass
class Engine:
    """A Docker engine for the session; `env()` is what any docker client (CLI, SDK, prefect-docker) needs.

    Either the private dockerd this module started (`process`), or an engine already running elsewhere
    (`external_host`, from SHIPSHAPE_TEST_DOCKER_HOST), which the tests neither start nor stop.
    """

    process: subprocess.Popen[bytes] | None
    data_root: Path
    run_dir: Path
    fresh_data_root: bool
    lock_fd: int
    timings: dict[str, float] = field(default_factory=dict)
    external_host: str | None = None

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return self.external_host or f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "dockerd.log"

    def env(self) -> dict[str, str]:
        """The caller's environment pointed at this engine, BuildKit on, away from the host's client config."""
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1",
            "BUILDKIT_PROGRESS": "plain",
            "DOCKER_CONFIG": str(self.run_dir / "client"),
        }

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Debian's docker CLI against this engine; a failure says what ran and what it printed."""
        result = subprocess.run(
            [str(DOCKER), *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise EngineError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


class EngineError(RuntimeError):
    """The private engine, the stand-in base or an image build did not do what was asked."""


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no log at {path}: {error})"


def require_tools() -> None:
    """Fail (never skip: CI must exercise the image) when the Debian tools are missing, naming the fix."""
    if os.environ.get(EXTERNAL_ENGINE_VARIABLE):
        missing = [name for name in ("docker", "make", "git") if shutil.which(name) is None]
    else:
        missing = [str(path) for path in (DOCKERD, DOCKER) if not path.exists()]
        missing += [name for name in ("mmdebstrap", "make", "git") if shutil.which(name) is None]
    if missing:
        pytest.fail(f"image tests need {', '.join(missing)}: {FIX_HINT}", pytrace=False)


# --- engine lifecycle -------------------------------------------------------------------------------------------


def connect_engine() -> Engine | None:
    """The engine SHIPSHAPE_TEST_DOCKER_HOST names, if set: used as it is, never started or stopped here."""
    host = os.environ.get(EXTERNAL_ENGINE_VARIABLE)
    if not host:
        return None
    run_dir = Path(tempfile.mkdtemp(prefix="ssd-", dir="/tmp"))  # only a private client config lives here
    (run_dir / "client").mkdir()
    engine = Engine(process=None, data_root=run_dir, run_dir=run_dir, fresh_data_root=False, lock_fd=-1,
                    external_host=host)
    try:
        engine.docker("version")
    except EngineError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return engine


def start_engine(data_root: Path | None = None) -> Engine:
    """Start dockerd on a persistent data root, first clearing a stale dockerd a killed session left on it.

    An flock beside the data root is held for the engine's life: if it is free, whatever still runs on that data
    root is stale (its session died, and the kernel dropped its lock) and is killed; if a live session holds it,
    this one uses a throwaway data root instead of waiting, so it can never hang on another run.
    """
    data_root = data_root or Path(os.environ.get("SHIPSHAPE_DOCKER_ROOT", str(DEFAULT_DATA_ROOT)))
    data_root.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(f"{data_root}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fresh = False
    except BlockingIOError:
        os.close(lock_fd)
        lock_fd = -1
        fresh = True
        data_root = Path(tempfile.mkdtemp(prefix=f"{data_root.name}-", dir=data_root.parent))
    if not fresh:
        _clear_stale_engine(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    # Unix socket paths must stay under 108 bytes: keep socket, exec root and pidfile in a short /tmp folder.
    run_dir = Path(tempfile.mkdtemp(prefix="ssd-", dir="/tmp"))
    (run_dir / "client").mkdir()
    (run_dir / "daemon.json").write_text("{}\n")  # ignore any host /etc/docker/daemon.json
    if not fresh:
        Path(f"{data_root}.engine.json").write_text(json.dumps({"run_dir": str(run_dir)}))
    argv = [
        str(DOCKERD),
        "--config-file", str(run_dir / "daemon.json"),
        "--data-root", str(data_root),
        "--exec-root", str(run_dir / "exec"),
        "--pidfile", str(run_dir / "dockerd.pid"),
        "--host", f"unix://{run_dir / 'docker.sock'}",
        "--storage-driver", "overlay2",
        # Leave the host's network alone: no bridge device, no iptables rules, net.ipv4.ip_forward untouched.
        "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    with open(run_dir / "dockerd.log", "wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    engine = Engine(process=process, data_root=data_root, run_dir=run_dir, fresh_data_root=fresh, lock_fd=lock_fd)
    started = time.monotonic()
    try:
        _wait_until_ready(engine, started + ENGINE_START_TIMEOUT)
    except BaseException:
        stop_engine(engine)
        raise
    engine.timings["engine_start"] = time.monotonic() - started
    return engine


def _ping(socket_path: Path) -> bool:
    """True once the engine answers its API ping on the socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(str(socket_path))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := client.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and reply.endswith(b"OK")


def _wait_until_ready(engine: Engine, deadline: float) -> None:
    while not _ping(engine.socket_path):
        if engine.process.poll() is not None:
            raise EngineError(f"dockerd exited {engine.process.returncode} while starting:\n{engine.log_tail()}")
        if time.monotonic() > deadline:
            raise EngineError(f"dockerd did not answer on {engine.socket_path} in time:\n{engine.log_tail()}")
        time.sleep(0.05)  # poll interval of the readiness check above, not a wait for an assumed duration


def stop_engine(engine: Engine) -> None:
    """Stop dockerd by its PID (SIGTERM, then SIGKILL after a deadline), then anything it left, then its files."""
    if engine.process is None:  # an external engine: not ours to stop
        shutil.rmtree(engine.run_dir, ignore_errors=True)
        return
    _terminate(engine.process.pid, ENGINE_STOP_TIMEOUT, child=engine.process)
    _kill_processes_mentioning(str(engine.run_dir))
    _kill_container_processes(engine.data_root)  # only left when dockerd had to be SIGKILLed
    _unmount_under(engine.run_dir)
    shutil.rmtree(engine.run_dir, ignore_errors=True)
    if engine.fresh_data_root:
        _unmount_under(engine.data_root)
        shutil.rmtree(engine.data_root, ignore_errors=True)
    else:
        Path(f"{engine.data_root}.engine.json").unlink(missing_ok=True)
    if engine.lock_fd >= 0:
        os.close(engine.lock_fd)  # releases the flock


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _terminate(pid: int, timeout: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM pid, wait for it to go (reaping it when it is our child), SIGKILL it when the deadline passes."""
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=grace)
                return
        else:
            deadline = time.monotonic() + grace
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # polls the process state; a process that is not our child cannot be waited for
            if not _alive(pid):
                return


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                yield int(entry.name), argv


def _kill_processes_mentioning(text: str) -> None:
    """containerd and its shims name the exec root in their arguments: that is how leftovers are found."""
    for pid, argv in _processes():
        if any(text in arg for arg in argv):
            _terminate(pid, 10.0)


def _kill_container_processes(data_root: Path) -> None:
    """Container processes outlive a SIGKILLed shim; they sit in a cgroup named after their container's id."""
    try:
        ids = [entry.name for entry in (data_root / "containers").iterdir() if len(entry.name) == 64]
    except OSError:
        return
    if not ids:
        return
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cgroups = (entry / "cgroup").read_text()
                if any(f"/{container_id}" in cgroups for container_id in ids):
                    _terminate(int(entry.name), 0.0)


def _clear_stale_engine(data_root: Path) -> None:
    """Kill a dockerd (and its containerd and shims) that a killed session left running on this data root."""
    for pid, argv in _processes():
        if argv and argv[0].endswith("dockerd") and str(data_root) in argv:
            _terminate(pid, ENGINE_STOP_TIMEOUT)
    record = Path(f"{data_root}.engine.json")
    if record.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            stale_run_dir = Path(json.loads(record.read_text())["run_dir"])
            _kill_processes_mentioning(str(stale_run_dir))
            _unmount_under(stale_run_dir)
            shutil.rmtree(stale_run_dir, ignore_errors=True)
        record.unlink(missing_ok=True)
    _kill_container_processes(data_root)
    _unmount_under(data_root)


def _unmount_under(root: Path) -> None:
    """Lazily unmount what a killed engine left mounted at or below root (its self bind mount, container rootfs,
    netns), deepest first."""
    prefix = str(root).rstrip("/") + "/"
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        return
    below = [mount for mount in mounts if mount.startswith(prefix) or mount == str(root)]
    for mount_point in sorted(below, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount_point], capture_output=True, check=False, timeout=30)


# --- stand-in base image ----------------------------------------------------------------------------------------


def _container_pip_conf() -> str:
    """pip settings for builds inside containers: the host's network indexes, never its local paths.

    The host's pip reads find-links and extra indexes from local folders (/opt/wheels, file:///opt/...);
    those do not exist in a container and are not needed: every pinned package is on the PyPI the proxy serves.
    Any http(s) index the host configures is kept; the CA bundle comes from the system store.
    """
    host = configparser.ConfigParser()
    with contextlib.suppress(configparser.Error):
        host.read([
            "/etc/xdg/pip/pip.conf", "/etc/pip.conf",
            str(Path.home() / ".pip/pip.conf"), str(Path.home() / ".config/pip/pip.conf"),
        ])
    settings: dict[str, str] = {}
    for key in ("index-url", "extra-index-url", "trusted-host"):
        for section in ("global", "install"):
            if host.has_option(section, key):
                settings[key] = host.get(section, key)
        if (from_env := os.environ.get("PIP_" + key.upper().replace("-", "_"))) is not None:
            settings[key] = from_env
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt", "timeout = 180"]
    for key, value in settings.items():
        kept = [item for item in value.split() if key == "trusted-host" or item.startswith(("http://", "https://"))]
        if kept:
            lines.append(f"{key} = {' '.join(kept)}")
    return "\n".join(lines) + "\n"


def _host_ca_files() -> list[Path]:
    """Locally added CAs (the egress proxy's among them), which update-ca-certificates adds to the image's store."""
    return sorted(path for path in HOST_CA_DIR.rglob("*.crt") if path.is_file()) if HOST_CA_DIR.is_dir() else []


@dataclass(frozen=True)
class StandinRecipe:
    """Everything that decides the stand-in rootfs; its hash names the cached tarball and marks the image."""

    mirror: str
    pip_conf: str
    ca_files: tuple[Path, ...]
    import_changes: tuple[str, ...]

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps([STANDIN_SUITE, self.mirror, STANDIN_PACKAGES, self.pip_conf,
                                  self.import_changes, _MMDEBSTRAP_OPTIONS, _LINKS]).encode())
        for path in self.ca_files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:16]

    @property
    def tarball(self) -> Path:
        return CACHE_DIR / f"python-3.11-slim-standin-{self.key}.tar"


_MMDEBSTRAP_OPTIONS = (
    "--mode=root", "--variant=minbase", "--format=tar",
    '--aptopt=Acquire::Check-Valid-Until "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
)
# python:3.11-slim has python and pip in /usr/local/bin; Debian ships python3 and pip3 only.
_LINKS = 'ln -sf /usr/bin/python3 "$1/usr/local/bin/python" && ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"'


def standin_recipe() -> StandinRecipe:
    return StandinRecipe(
        mirror=os.environ.get("SHIPSHAPE_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
        pip_conf=_container_pip_conf(),
        ca_files=tuple(_host_ca_files()),
        import_changes=(
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            # Debian's Python refuses a plain `pip install` (PEP 668); python:3.11-slim does not.
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
            'CMD ["python3"]',
        ),
    )


def ensure_standin_base(engine: Engine) -> str:
    """Give the engine a `python:3.11-slim` built from Debian bookworm; returns "present", "imported" or "built".

    Skipped when the engine's tag already carries this recipe's key (kept in the image comment, which unlike a
    label is not inherited by the project image); the rootfs tarball is cached by recipe key across data roots.
    """
    if engine.external_host:  # registries are reachable where an engine already runs: the real base image
        if engine.docker("image", "inspect", STANDIN_TAG, check=False).returncode != 0:
            engine.docker("pull", STANDIN_TAG, timeout=600)
        return "present"
    recipe = standin_recipe()
    present = engine.docker("image", "inspect", "--format", "{{.Comment}}", STANDIN_TAG, check=False)
    if present.returncode == 0 and present.stdout.strip() == f"shipshape-standin {recipe.key}":
        return "present"
    started = time.monotonic()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    outcome = "imported"
    with open(CACHE_DIR / "standin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same tarball: wait for it, then reuse it
        if not recipe.tarball.exists():
            _mmdebstrap(recipe)
            outcome = "built"
    engine.timings["standin_rootfs"] = time.monotonic() - started
    started = time.monotonic()
    changes = [arg for change in recipe.import_changes for arg in ("--change", change)]
    engine.docker("import", *changes, "--message", f"shipshape-standin {recipe.key}",
                  str(recipe.tarball), STANDIN_TAG, timeout=300)
    engine.timings["standin_import"] = time.monotonic() - started
    return outcome


def _mmdebstrap(recipe: StandinRecipe) -> None:
    with tempfile.TemporaryDirectory(prefix="standin-", dir=CACHE_DIR) as scratch:
        pip_conf = Path(scratch) / "pip.conf"
        pip_conf.write_text(recipe.pip_conf)
        partial = Path(scratch) / "rootfs.tar"
        hooks = [f"--customize-hook=copy-in {pip_conf} /etc/", f"--customize-hook={_LINKS}"]
        if recipe.ca_files:
            hooks += [
                f"--customize-hook=copy-in {' '.join(map(str, recipe.ca_files))} /usr/local/share/ca-certificates/",
                '--customize-hook=chroot "$1" update-ca-certificates',
            ]
        argv = ["mmdebstrap", *_MMDEBSTRAP_OPTIONS, f"--include={','.join(STANDIN_PACKAGES)}", *hooks,
                STANDIN_SUITE, str(partial), recipe.mirror]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if result.returncode != 0:
            raise EngineError(f"mmdebstrap exited {result.returncode}:\n{result.stderr[-4000:]}")
        partial.replace(recipe.tarball)  # atomic: a killed build never leaves a half tarball under the cache key


# --- project image ----------------------------------------------------------------------------------------------


def git_sha(short: bool = False) -> str:
    args = ["git", "rev-parse", *(["--short=12"] if short else []), "HEAD"]
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class Build:
    seconds: float
    log: str


def build_image(engine: Engine, tag: str, context: Path = REPO_ROOT, extra_env: dict[str, str] | None = None,
                make_vars: Sequence[str] = ()) -> Build:
    """Build the production image with `make image`, exactly as CI does, but with this engine and Debian's client.

    Raises EngineError with the build log's tail when the build fails.
    """
    argv = ["make", "--no-print-directory", "-f", str(REPO_ROOT / "Makefile"), "-C", str(context), "image",
            f"IMAGE={tag}", f"DOCKER={DOCKER}", *make_vars]
    started = time.monotonic()
    result = subprocess.run(argv, env={**engine.env(), **(extra_env or {})}, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT, check=False)
    log = result.stdout + result.stderr
    if result.returncode != 0:
        last = "\n".join(log.splitlines()[-60:])
        raise EngineError(f"`{' '.join(argv)}` exited {result.returncode}; build log tail:\n{last}")
    return Build(seconds=time.monotonic() - started, log=log)


def prune_old_project_images(engine: Engine, keep: str) -> None:
    """The data root persists across runs: drop earlier commits' test tags and week-old build cache."""
    listed = engine.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "shipshape").stdout.split()
    stale = [tag for tag in listed if tag.startswith("shipshape:test-") and tag != keep]
    if stale:
        engine.docker("image", "rm", *stale, check=False)
    engine.docker("image", "prune", "--force", check=False)
    engine.docker("builder", "prune", "--force", "--filter", "until=168h", check=False, timeout=300)
