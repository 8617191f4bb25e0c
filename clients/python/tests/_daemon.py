"""A real breakerd in its own temp directory, instance and sockets, driven by
the real `breaker` CLI: the Python twin of tests/bk_harness.c.

Binaries come from the environment, as ctest sets it (tests/CMakeLists.txt):
BREAKERD, BREAKER_CLI, BK_SHM_DUMP (and BK_ENGINE_LOOP for the examples).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

from breaker_client import layout as L

STRATS = "[strategies]\nnames = alpha, beta, gamma\n"


def binary(var: str) -> str:
    path = os.environ.get(var)
    if not path:
        raise AssertionError(f"{var} is not set: run through ctest, or export it (see tests/CMakeLists.txt)")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{var}={path} is not an executable: build first")
    return path


class Daemon:
    def __init__(self, tag: str, extra_ini: str = STRATS) -> None:
        self.breakerd = binary("BREAKERD")
        self.cli_bin = binary("BREAKER_CLI")
        self.dir = tempfile.mkdtemp(prefix=f"bk-py-{tag}-")
        self.instance = f"p{os.getpid()}-{tag}"
        self.config = os.path.join(self.dir, "breaker.ini")
        self.log = os.path.join(self.dir, "breakerd.log")
        with open(self.config, "w", encoding="ascii") as f:
            f.write(f"[breaker]\ninstance = {self.instance}\nrun_dir = {self.dir}/run\n"
                    f"state_dir = {self.dir}/state\n")
            f.write(extra_ini)
        self.segment = os.path.join(L.SHM_DIR, L.SHM_PREFIX + self.instance)
        self._unlink_segment()  # a stale one from an earlier run
        self.proc: subprocess.Popen[bytes] | None = None

    def _unlink_segment(self) -> None:
        """The state segment and any companion (e.g. the daemon's .tel segment)."""
        for path in [self.segment, *glob.glob(glob.escape(self.segment) + ".*")]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def start(self) -> None:
        """Start breakerd; return once `breaker status` answers (5 s at most)."""
        self.proc = subprocess.Popen([self.breakerd, "--config", self.config, "--log-file", self.log])
        for _ in range(500):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError(f"breakerd exited at start ({code}); see {self.log}")
            if self.cli("status").returncode == 0:
                return
            time.sleep(0.01)
        raise AssertionError(f"breakerd did not answer within 5 s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None, "breakerd is not running"
        return self.proc.pid

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        code = self.proc.wait(10)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP and wait until the kernel reports it stopped: nothing moves."""
        os.kill(self.pid, signal.SIGSTOP)
        for _ in range(1000):
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    return
            time.sleep(0.001)
        raise AssertionError("breakerd did not stop on SIGSTOP")

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def fini(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.stop()
        self._unlink_segment()
        if not os.environ.get("BK_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real CLI with --config; never raises on a non-zero exit."""
        return subprocess.run([self.cli_bin, "--config", self.config, *args],
                              capture_output=True, text=True, timeout=30)

    def ok(self, *args: str) -> str:
        """The CLI, which must succeed; its stdout."""
        r = self.cli(*args)
        if r.returncode != 0:
            raise AssertionError(f"breaker {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r.stdout


def c_dump(instance: str, max_age_ns: int = 0) -> dict[str, Any]:
    """What the C client (breaker_client.h) reads, via bk_shm_dump."""
    r = subprocess.run([binary("BK_SHM_DUMP"), instance, str(max_age_ns)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"bk_shm_dump {instance}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)
