"""Writes files into a directory the way the kubelet's atomic writer updates a ConfigMap/Secret volume."""

from __future__ import annotations

import os
import pathlib


def kubelet_write(directory: pathlib.Path, files: dict[str, str], generation: int) -> None:
    """New timestamped dir, ``..data_tmp`` pointing at it, renamed over ``..data``; files link through ``..data``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"..2026_11_25_00_00_{generation:02d}.000000001"
    target.mkdir()
    for name, content in files.items():
        (target / name).write_text(content)
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(pathlib.Path("..data") / name)
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, directory / "..data")
