"""A PEP 517 build backend in the standard library alone.

Why: `pip install ./clients/python` builds in an isolated environment and
would first download setuptools (and wheel) from a package index. Trading
hosts often have none, and Debian bookworm's venvs lack `wheel`, so the
install failed offline. This package is pure Python: a wheel is a zip of
breaker_client/ plus three metadata files, which this module writes. The
metadata comes from pyproject.toml's [project] table.

Hooks: build_wheel, build_sdist, build_editable (PEP 660: a .pth file that
points at this directory), and the get_requires_* hooks (nothing needed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tomllib
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = "breaker_client"


def _project() -> dict:
    with open(os.path.join(_HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name(p: dict) -> str:
    return p["name"].replace("-", "_")


def _metadata(p: dict) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '')}",
    ]
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    readme = p.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(_HERE, readme), encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _package_files() -> list[str]:
    out = []
    for name in sorted(os.listdir(os.path.join(_HERE, _PACKAGE))):
        if name.endswith(".py") or name == "py.typed":
            out.append(f"{_PACKAGE}/{name}")
    return out


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{arcname},sha256={digest.decode()},{len(data)}"


def _write_wheel(wheel_directory: str, files: dict[str, bytes]) -> str:
    p = _project()
    dist = f"{_dist_name(p)}-{p['version']}"
    info = f"{dist}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = _metadata(p).encode()
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: breaker _build_backend\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files.items():
            z.writestr(arcname, data)
    return name


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001, ANN201
    return []


def get_requires_for_build_sdist(config_settings=None):  # noqa: ANN001, ANN201
    return []


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001, ANN201
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201
    files = {}
    for arcname in _package_files():
        with open(os.path.join(_HERE, arcname), "rb") as f:
            files[arcname] = f.read()
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201
    return _write_wheel(wheel_directory, {f"{_PACKAGE}.pth": (_HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):  # noqa: ANN001, ANN201
    p = _project()
    dist = f"{_dist_name(p)}-{p['version']}"
    names = ["pyproject.toml", "README.md", "_build_backend.py", *_package_files()]
    name = f"{dist}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for n in names:
            t.add(os.path.join(_HERE, n), arcname=f"{dist}/{n}")
        info = tarfile.TarInfo(f"{dist}/PKG-INFO")
        data = _metadata(p).encode()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
