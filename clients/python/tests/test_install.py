"""The install docs/clients.md gives, as a user on Debian bookworm runs it:
a venv, then `pip install ./clients/python` with no package index
(--no-index: nothing may be downloaded). Then the installed package, not the
source tree, must import and be the one with the trust checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path


def package_dir() -> Path:
    root = os.environ.get("BK_SOURCE_DIR")
    base = Path(root) if root else Path(__file__).resolve().parents[3]
    return base / "clients" / "python"


class VenvInstall(unittest.TestCase):
    def test_pip_install_in_a_venv_offline(self) -> None:
        tmp = tempfile.mkdtemp(prefix="bk-venv-")
        self.addCleanup(shutil.rmtree, tmp, True)
        venv = Path(tmp) / "v"
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"no venv module here (python3-venv): {r.stderr.strip()[:200]}")
        # a copy, so that the build leaves nothing behind in the source tree
        src = Path(tmp) / "src"
        shutil.copytree(package_dir(), src, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--no-index", "--disable-pip-version-check", str(src)],
            capture_output=True, text=True, env=env, timeout=240,
        )
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "import breaker_client as bk; print(bk.__file__); print(bk.DAEMON_UID_ENV)"],
            capture_output=True, text=True, env=env, cwd=tmp,
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        where, var = r.stdout.split()
        self.assertTrue(where.startswith(str(venv)), f"imported from {where}, not the venv")
        self.assertEqual(var, "BREAKER_DAEMON_UID")


if __name__ == "__main__":
    unittest.main()
