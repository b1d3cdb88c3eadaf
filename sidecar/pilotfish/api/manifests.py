"""Multi-document YAML → typed objects (ModelClass, ProviderCredential, Budget, Secret), with errors that
name the file, the document, the object and the field, as ``kubectl apply`` users expect.

Parsing never stops at the first bad object: a broken manifest must not hide the good ones, and a
person fixing a folder wants every problem at once. Other kinds (Deployments beside our objects in
a folder) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pydantic

from pilotfish.api import budget, credential, modelclass, refs

if TYPE_CHECKING:
    import yaml

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclasses.dataclass(frozen=True)
class SecretObject:
    """A v1 Secret as manifests carry it; values stay ApiKeys so they never print."""

    name: str
    namespace: str
    data: Mapping[str, refs.ApiKey]


@dataclasses.dataclass(frozen=True)
class ManifestError:
    source: str  # "path (document N)"
    subject: str  # 'ModelClass "workhorse"', or "" when the document has no usable identity
    message: str

    def __str__(self) -> str:
        return f"{self.source} {self.subject}: {self.message}" if self.subject else f"{self.source}: {self.message}"


@dataclasses.dataclass
class Manifests:
    classes: list[modelclass.ModelClass] = dataclasses.field(default_factory=list)
    credentials: list[credential.ProviderCredential] = dataclasses.field(default_factory=list)
    budgets: list[budget.Budget] = dataclasses.field(default_factory=list)
    secrets: list[SecretObject] = dataclasses.field(default_factory=list)
    errors: list[ManifestError] = dataclasses.field(default_factory=list)


def load_paths(paths: Sequence[str | pathlib.Path], *, namespace: str) -> Manifests:
    """Read files and folders (recursively, sorted, YAML/JSON only) into one result."""
    result = Manifests()
    for path in expand_paths(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(ManifestError(str(path), "", f"cannot read: {exc}"))
            continue
        parse_text(text, source=str(path), namespace=namespace, into=result)
    return result


def expand_paths(paths: Sequence[str | pathlib.Path]) -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES))
        else:
            files.append(path)
    return files


def parse_text(text: str, *, source: str, namespace: str, into: Manifests | None = None) -> Manifests:
    # imported here: `pilotfish sidecar` reads the routes document (JSON) and the validation helpers below,
    # never YAML, and PyYAML costs every pod about 1 MiB resident
    import yaml

    result = into if into is not None else Manifests()
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        result.errors.append(ManifestError(source, "", f"invalid YAML: {_yaml_problem(exc)}"))
        return result
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        where = f"{source} (document {index})" if len(documents) > 1 else source
        _parse_document(doc, where=where, namespace=namespace, into=result)
    return result


def _parse_document(doc: Any, *, where: str, namespace: str, into: Manifests) -> None:
    if not isinstance(doc, dict):
        into.errors.append(ManifestError(where, "", "a manifest must be a mapping with apiVersion and kind"))
        return
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not kind or not api_version:
        into.errors.append(ManifestError(where, "", "apiVersion and kind are required"))
        return
    raw_metadata = doc.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = metadata.get("name", "")
    subject = f'{kind} "{name}"' if name else str(kind)
    doc = {**doc, "metadata": {**metadata, "namespace": metadata.get("namespace") or namespace}}
    if kind == "Secret" and api_version == "v1":
        _parse_secret(doc, where=where, subject=subject, into=into)
    elif kind in _KINDS and str(api_version).startswith("pilotfish.dev/"):
        model, listed = _KINDS[kind]
        try:
            parsed = model.model_validate(doc)
        except pydantic.ValidationError as exc:
            into.errors.extend(ManifestError(where, subject, line) for line in validation_lines(exc))
            return
        getattr(into, listed).append(parsed)


# kind → (model, the list of ``Manifests`` it goes in)
_KINDS: dict[str, tuple[type[pydantic.BaseModel], str]] = {
    modelclass.KIND: (modelclass.ModelClass, "classes"),
    credential.KIND: (credential.ProviderCredential, "credentials"),
    budget.KIND: (budget.Budget, "budgets"),
}


def _parse_secret(doc: dict[str, Any], *, where: str, subject: str, into: Manifests) -> None:
    metadata = doc["metadata"]
    if not metadata.get("name"):
        into.errors.append(ManifestError(where, subject, "metadata.name: Field required"))
        return
    values: dict[str, refs.ApiKey] = {}
    for key, encoded in (doc.get("data") or {}).items():
        try:
            values[key] = refs.ApiKey(base64.b64decode(str(encoded), validate=True).decode("utf-8").strip())
        except (binascii.Error, UnicodeDecodeError):
            into.errors.append(
                ManifestError(where, subject, f"data.{key}: not valid base64 (use stringData for plain text)")
            )
    for key, plain in (doc.get("stringData") or {}).items():
        values[key] = refs.ApiKey(str(plain).strip())  # stringData wins, as the API server merges it
    into.secrets.append(SecretObject(name=metadata["name"], namespace=metadata["namespace"], data=values))


def validation_lines(exc: pydantic.ValidationError) -> list[str]:
    """One line per problem: ``spec.members[0].model: Field required``."""
    lines = []
    for error in exc.errors(include_url=False):
        path = field_path(error["loc"])
        lines.append(f"{path}: {error['msg']}" if path else error["msg"])  # an object-wide rule names its fields
    return lines


def field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)
