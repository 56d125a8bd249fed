"""The data-set manifest: every file of OwlEval with its size and sha256, and the pinned upstream source."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from owleval.errors import OwlEvalError

MANIFEST_FILENAME = "manifest.json"


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # POSIX path relative to the data-set root
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    source_url: str  # URL pattern with "{path}" where the file's relative path goes
    source_repository: str
    source_commit: str
    license: str
    files: tuple[ManifestEntry, ...]

    def url_for(self, entry: ManifestEntry) -> str:
        return self.source_url.format(path=entry.path)

    @property
    def digest(self) -> str:
        """A short hash of the whole manifest: the data-set version written into answers and reports."""
        blob = "\n".join(f"{f.path} {f.size} {f.sha256}" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        doc = {
            "name": self.name,
            "version": self.version,
            "source": {
                "repository": self.source_repository,
                "commit": self.source_commit,
                "url": self.source_url,
                "license": self.license,
            },
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(doc, indent=2) + "\n"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def parse_manifest(text: str, origin: str = MANIFEST_FILENAME) -> Manifest:
    try:
        doc = json.loads(text)
        src = doc["source"]
        files = tuple(ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc["files"])
        return Manifest(
            name=doc["name"],
            version=doc["version"],
            source_url=src["url"],
            source_repository=src["repository"],
            source_commit=src["commit"],
            license=src.get("license", ""),
            files=files,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise OwlEvalError(f"{origin}: not a valid OwlEval manifest ({exc!r})") from exc


def load_manifest() -> Manifest:
    """The manifest shipped with this package (data/owleval_82q/manifest.json in a checkout)."""
    ref = resources.files("owleval.dataset_manifest").joinpath(MANIFEST_FILENAME)
    return parse_manifest(ref.read_text(encoding="utf-8"), origin=str(ref))


def build_manifest(folder: Path, *, template: Manifest) -> Manifest:
    """A manifest for the files in ``folder`` (maintainers: after an upstream update), keeping the source pins."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or rel in {MANIFEST_FILENAME, "SOURCE.md"}:
            continue
        entries.append(ManifestEntry(rel, path.stat().st_size, sha256_of(path)))
    return Manifest(
        name=template.name,
        version=template.version,
        source_url=template.source_url,
        source_repository=template.source_repository,
        source_commit=template.source_commit,
        license=template.license,
        files=tuple(entries),
    )
