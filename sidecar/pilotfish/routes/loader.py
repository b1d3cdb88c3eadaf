"""Reads the routes document and the Secrets it references from directories as Kubernetes mounts them.

The kubelet updates a mounted ConfigMap or Secret atomically: it writes a new timestamped directory,
points ``..data_tmp`` at it and renames that over the ``..data`` symlink, while the visible files are
symlinks through ``..data``. So a change is detected by where ``..data`` points (or, for a plain
directory, by file mtimes), and a half-written file is never seen. A document that fails to parse or
validate, or that names a Secret file that is not mounted, is rejected: the last good snapshot stays.
A mounted folder with no document in it (the optional ConfigMap does not exist: no class in the
namespace yet, or the last one was deleted) is an empty document: no classes, and ready.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping

import msgspec

from pilotfish.routes import document
from pilotfish.specs import refs


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A validated routes document and the key values it references."""

    document: document.RoutesDocument
    keys: Mapping[tuple[str, str], refs.ApiKey]
    digest: str


class RoutesLoader:
    """Loads from ``config_dir`` (the routes ConfigMap) and ``secrets_dir/<secret>/<key>``."""

    def __init__(self, *, config_dir: str | pathlib.Path, secrets_dir: str | pathlib.Path) -> None:
        self.config_dir = pathlib.Path(config_dir)
        self.secrets_dir = pathlib.Path(secrets_dir)
        self._seen: object = None

    def changed(self) -> bool:
        """Cheap check for the poll loop: did either mount change since the last load()?"""
        return self._fingerprint() != self._seen

    def load(self) -> Snapshot:
        """Read everything; raises LoadError with a message naming the file and the problem."""
        self._seen = self._fingerprint()
        path = self.config_dir / document.DOCUMENT_KEY
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if not self.config_dir.is_dir():
                raise LoadError(f"{path}: cannot read the routes document: the folder is not mounted") from None
            # Mounted but empty: the routes ConfigMap is optional and does not exist, because no
            # ModelClass exists in this namespace yet. The app must still start; serve no classes
            # (requests get a clear error) until the kubelet projects the ConfigMap here.
            empty = document.RoutesDocument()
            return Snapshot(document=empty, keys={}, digest=empty.digest())
        except OSError as exc:
            raise LoadError(f"{path}: cannot read the routes document: {exc.strerror or exc}") from None
        try:
            routes = document.RoutesDocument.from_json(raw)
        except document.DocumentError as exc:
            raise LoadError(f"{path}: not a routes document this sidecar understands: {exc}") from None
        except msgspec.DecodeError as exc:
            raise LoadError(f"{path}: not valid JSON: {exc}") from None
        return Snapshot(document=routes, keys=self._read_keys(routes), digest=routes.digest())

    def _read_keys(self, routes: document.RoutesDocument) -> dict[tuple[str, str], refs.ApiKey]:
        keys: dict[tuple[str, str], refs.ApiKey] = {}
        for route in routes.classes.values():
            for member in (*route.members, *((route.canary.member,) if route.canary else ())):
                ref = member.api_key_ref
                if ref is None or (ref.name, ref.key) in keys:
                    continue
                key_path = self.secrets_dir / ref.name / ref.key
                try:
                    keys[(ref.name, ref.key)] = refs.ApiKey(key_path.read_text(encoding="utf-8").strip())
                except (OSError, UnicodeDecodeError):
                    raise LoadError(
                        f'member {member.id} of class "{route.name}" needs Secret "{ref.name}" key "{ref.key}", '
                        f"but {key_path} is not mounted"
                    ) from None
        return keys

    def _fingerprint(self) -> object:
        return (_dir_fingerprint(self.config_dir), _dir_fingerprint(self.secrets_dir))


class LoadError(Exception):
    """The newest routes could not be used; the message says which file and why."""


def _dir_fingerprint(directory: pathlib.Path) -> object:
    """Where ..data points (kubelet mounts), else every file's (name, mtime, size), else None."""
    data_link = directory / "..data"
    try:
        return ("link", os.readlink(data_link))
    except OSError:
        pass
    try:
        entries = []
        for path in sorted(directory.rglob("*")):
            stat = path.stat()
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
        return ("files", tuple(entries))
    except OSError:
        return None
