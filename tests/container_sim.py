"""A container start and stop without a Docker engine: the image's own scripts on a fake root.

What is real: the files under docker/rootfs (run unmodified, their paths
given by environment variables), Debian's s6 (s6-svscan as the stand-in for
PID 1, s6-supervise, s6-svc, s6-log), usermod/groupmod, the installed
`hermes`, an unprivileged uid as the gateway user.

What is simulated, and how (docs/docker.md says the same):

- The root file system is a directory: ``run/service`` (root's, 0755) is
  /run/service, ``opt/data`` is the volume, ``etc/passwd`` and ``etc/group``
  hold the account the remap changes (usermod/groupmod --prefix), and
  ``var/log/hermes-state-watch`` is the logger's directory. The account in
  that passwd file bears the name of the test's unprivileged user, so once
  remapped to that user's real ids it is the same account s6-setuidgid and
  boot look up.
- ``/command/with-contenv`` does not exist here: the shebang is honoured by
  running its words with with-contenv replaced by a pass-through (``exec
  "$@"``), and every process starts with the container's environment
  already, which is what with-contenv would have restored. The s6 binaries
  come from /usr/bin instead of /command.
- s6-overlay's stages are played by this class, in its order, with the
  settings read from the Dockerfile's ENV (dockerfile-parse): the scan
  directory emptied at every start (s6-overlay's preinit does that; the rest
  of /run survives a `docker restart`); s6-svscan on the scan directory;
  rc.init's part: the S6_STAGE2_HOOK script, and when it exits non-zero with
  S6_BEHAVIOUR_IF_STAGE2_FAILS >= 2, its status written to
  ``run/s6-linux-init-container-results/exitcode`` (rc.init's ``haltwith``)
  and nothing more started; otherwise the s6-rc pipeline as a service
  directory whose ``log/`` is the logger (s6-svscan's own service/logger pipe
  instead of s6-rc's fd-holder), and a main program's exit status written to
  the same file. On stop: the pipeline down, cont-finish.d in order, then
  ``s6-svscanctl -t`` for the final kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

from conftest import BIN_DIR, User, run_as
from projector_support import GATEWAY, processes_under, wait_for

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "docker" / "rootfs"
# The final stage's ENV: what s6-overlay reads (the hook, the stage-2 behaviour, the main program).
IMAGE_ENV = DockerfileParser(path=str(REPO / "Dockerfile")).envs
CONT_FINISH = ROOTFS / "etc" / "cont-finish.d"
S6_RC = ROOTFS / "etc" / "s6-overlay" / "s6-rc.d"
IMAGE_ID = 10000  # the image's hermes uid and gid
WATCH = "hermes-state-watch"
GATEWAYS = "hermes-state-gateways"  # watch-gateways, as the gateway user

PASS_THROUGH = "#!/bin/sh\n# Stand-in for s6-overlay's with-contenv: the environment is already the container's.\nexec \"$@\"\n"


@dataclass
class Container:
    """One fake root, started and stopped as `docker restart` would."""

    base: Path
    user: User
    extra_env: dict[str, str] = field(default_factory=dict)
    scanner: subprocess.Popen | None = None
    # Another container's volume, mounted here too (`docker run -v hermes-data:/opt/data` twice).
    shared_volume: Path | None = None

    def __post_init__(self) -> None:
        self.root = self.base / "root"
        self.volume = self.shared_volume or self.root / "opt" / "data"
        self.scandir = self.root / "run" / "service"
        self.exitcode_file = self.root / "run" / "s6-linux-init-container-results" / "exitcode"
        self.log_dir = self.root / "var" / "log" / "hermes-state-watch"
        self.shims = self.base / "command"
        self.gateway = self.base / "gateway"

    # -- the image ---------------------------------------------------------
    def build(self, legacy_home: Path | None) -> None:
        """What `docker build` + a new volume give: the account at 10000:10000, the volume theirs."""
        for path in (self.root / "etc", self.root / "opt", self.log_dir.parent, self.shims):
            path.mkdir(parents=True, exist_ok=True)
        etc = self.root / "etc"
        name = self.user.name
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/bash\n"
            # The home is the image's: usermod --prefix ROOT would find the volume there, as usermod does in the image.
            f"{name}:x:{IMAGE_ID}:{IMAGE_ID}::/opt/data:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\nnogroup:x:65534:\n{name}:x:{IMAGE_ID}:\n")
        (etc / "shadow").write_text(f"root:*:19000:0:99999:7:::\n{name}:!:19000::::::\n")
        (etc / "gshadow").write_text(f"root:*::\n{name}:!::\n")
        (etc / "shadow").chmod(0o640)
        (etc / "gshadow").chmod(0o640)
        if self.shared_volume is not None:
            assert legacy_home is None, "a shared volume is the other container's, as it is"
        elif legacy_home is not None:
            shutil.copytree(legacy_home, self.volume, symlinks=True)
        else:
            self.volume.mkdir()
        if self.shared_volume is None:
            self.volume.chmod(0o750)
            for top, dirs, files in os.walk(self.volume):
                for entry in [top, *(os.path.join(top, n) for n in dirs + files)]:
                    os.lchown(entry, IMAGE_ID, IMAGE_ID)
        self.log_dir.mkdir()
        shutil.chown(self.log_dir, "nobody", "nogroup")
        (self.shims / "with-contenv").write_text(PASS_THROUGH)
        (self.shims / "with-contenv").chmod(0o755)
        self.gateway.write_text(GATEWAY)
        self.gateway.chmod(0o755)

    @property
    def env(self) -> dict[str, str]:
        """The container's environment: the Dockerfile's ENV, `docker run -e`, paths into the fake root."""
        env = {
            "PATH": f"{self.shims}:{ROOTFS / 'usr' / 'local' / 'sbin'}:{ROOTFS / 'usr' / 'local' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "HERMES_HOME": str(self.volume),
            "HERMES_USER": self.user.name,
            "HERMES_BIN": str(BIN_DIR / "hermes-state"),
            "HERMES_AGENT_BIN": str(self.base / "no-hermes-agent"),  # the image built without hermes-agent
            "HERMES_UID": str(self.user.uid),
            "HERMES_GID": str(self.user.gid),
            "HERMES_SYSTEM_ROOT": str(self.root),
            "HERMES_WATCH_LOG_DIR": str(self.log_dir),
            "S6_PROFILE_GATEWAY_SCANDIR": str(self.scandir),
            "HERMES_GATEWAY_COMMAND": f"{self.gateway} {{profile}}",
        }
        env.update(self.extra_env)
        return env

    def argv(self, script: Path, *args: str) -> list[str]:
        """How the kernel would run ``script``: its shebang's words, /command/with-contenv mapped to the shim."""
        first = script.read_text().splitlines()[0]
        assert first.startswith("#!"), f"{script} has no shebang"
        words = first[2:].split()
        if words[0] == "/command/with-contenv":
            words[0] = str(self.shims / "with-contenv")
        return [*words, str(script), *args]

    def run(self, script: Path, *args: str, user: User | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A script of the image, as root unless ``user`` is given (a `docker exec -u`)."""
        return run_as(self.argv(script, *args), user, env=self.env, timeout=timeout)

    def hermes(self, *args: str, user: User | None = None) -> subprocess.CompletedProcess[str]:
        """`docker exec CONTAINER hermes-state ...`: the image's `hermes-state` on PATH, as root unless ``user``."""
        return run_as([str(ROOTFS / "usr" / "local" / "bin" / "hermes-state"), *args], user, env=self.env, timeout=60)

    # -- a start -------------------------------------------------------------
    @staticmethod
    def image_file(path: str) -> Path:
        """Where an absolute path of the image (from docker/rootfs) is in this repository."""
        return ROOTFS / path.lstrip("/")

    def start(self) -> subprocess.CompletedProcess[str]:
        """Stage 1 and 2: a fresh /run, s6-svscan, the stage-2 hook; the watch pipeline only if it succeeded."""
        assert self.scanner is None, "already started"
        self.exitcode_file.parent.mkdir(parents=True, exist_ok=True)
        self.exitcode_file.unlink(missing_ok=True)
        shutil.rmtree(self.scandir, ignore_errors=True)  # s6-overlay's preinit: rm -rf + mkdir 0755
        self.scandir.mkdir(parents=True, mode=0o755)
        (self.root / "run").chmod(0o755)
        self.scanner = subprocess.Popen(
            ["s6-svscan", str(self.scandir)], env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=(self.base / "svscan.log").open("ab"), stderr=subprocess.STDOUT,
        )
        wait_for(lambda: (self.scandir / ".s6-svscan" / "control").exists(), 5, "s6-svscan to start")
        hook = self.run(self.image_file(IMAGE_ENV["S6_STAGE2_HOOK"]))
        if hook.returncode != 0 and int(IMAGE_ENV.get("S6_BEHAVIOUR_IF_STAGE2_FAILS", "0")) >= 2:
            self.exitcode_file.write_text(f"{hook.returncode}\n")  # rc.init: haltwith "$r"
        else:
            self._start_watch_pipeline()
        return hook

    def main_program(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker run IMAGE ARGS`: rc.init runs S6_CMD_ARG0 with ARGS, as root, and keeps its exit status."""
        result = self.run(self.image_file(IMAGE_ENV["S6_CMD_ARG0"]), *args)
        self.exitcode_file.write_text(f"{result.returncode}\n")
        return result

    def exit_code(self) -> int | None:
        """The container's exit status as s6-overlay's stage 4 reads it (None: nothing has set it yet)."""
        if not self.exitcode_file.exists():
            return None
        return int(self.exitcode_file.read_text().strip())

    def _start_watch_pipeline(self) -> None:
        service = self.scandir / WATCH
        (service / "log").mkdir(parents=True)
        for path, script in ((service / "run", S6_RC / WATCH / "run"), (service / "log" / "run", S6_RC / f"{WATCH}-log" / "run")):
            words = " ".join(f"'{word}'" for word in self.argv(script))
            path.write_text(f"#!/bin/sh\nexec {words}\n")
            path.chmod(0o755)
        reader = self.scandir / GATEWAYS
        reader.mkdir()
        words = " ".join(f"'{word}'" for word in self.argv(S6_RC / GATEWAYS / "run"))
        (reader / "run").write_text(f"#!/bin/sh\nexec {words}\n")
        (reader / "run").chmod(0o755)
        subprocess.run(["s6-svscanctl", "-a", str(self.scandir)], check=True, timeout=10)
        wait_for(lambda: self.svstat(service) == "true", 10, "the watch daemon up")
        wait_for(lambda: self.svstat(reader) == "true", 10, "the gateways' reader up")

    # -- a stop --------------------------------------------------------------
    def stop(self) -> list[subprocess.CompletedProcess[str]]:
        """Stage 3: the pipeline down, cont-finish.d, the final kill; then nothing may be left running."""
        assert self.scanner is not None, "not started"
        service = self.scandir / WATCH
        if service.exists():
            for path in (service, service / "log", self.scandir / GATEWAYS):
                subprocess.run(["s6-svc", "-dwD", "-T", "10000", str(path)], check=True, timeout=15)
        results = [self.run(script) for script in sorted(CONT_FINISH.iterdir())]
        self._stop_scanner()
        return results

    def _stop_scanner(self) -> None:
        scanner, self.scanner = self.scanner, None
        if scanner is None:
            return
        if scanner.poll() is None:
            subprocess.run(["s6-svscanctl", "-t", str(self.scandir)], timeout=10)
        try:
            scanner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(scanner.pid, signal.SIGKILL)
            scanner.wait()
            raise AssertionError("s6-svscan did not exit after s6-svscanctl -t")
        wait_for(lambda: not processes_under(self.root), 10, "no process left in the fake root")

    def scanner_output(self) -> str:
        """What s6-svscan and everything under it (hooks, gateways, the logger's copy) printed."""
        path = self.base / "svscan.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        """Teardown: whatever a failed test left running is stopped, by the pids it started."""
        if self.scanner is not None and self.scanner.poll() is None:
            try:
                self._stop_scanner()
            finally:
                leftovers = processes_under(self.root)
                for line in leftovers:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
        self.scanner = None

    # -- what s6 shows ---------------------------------------------------------
    @staticmethod
    def svstat(path: Path, fields: str = "up") -> str | None:
        result = subprocess.run(["s6-svstat", "-o", fields, str(path)], capture_output=True, text=True, timeout=10)
        return result.stdout.strip() if result.returncode == 0 else None

    def slots(self) -> set[str]:
        return {entry.name[len("gateway-"):] for entry in self.scandir.iterdir() if entry.name.startswith("gateway-")}

    def running(self) -> dict[str, int]:
        """Profile -> pid of every slot s6 reports up."""
        found = {}
        for name in self.slots():
            state = self.svstat(self.scandir / f"gateway-{name}", "up,pid")
            if state and state.split()[0] == "true":
                found[name] = int(state.split()[1])
        return found
