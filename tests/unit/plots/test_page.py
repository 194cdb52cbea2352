"""The offline page: vendored scripts inline, DVC's placeholders kept, no CDN, rebuilt when stale."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.layout import PLOTS_PAGE, VENDORED_VEGA_DIR
from aistudio.plots.page import (
    DVC_PLACEHOLDERS,
    SKELETON,
    VENDORED,
    page_problem,
    render_page,
    write_page,
)


@pytest.fixture
def root(repo_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(repo_root / VENDORED_VEGA_DIR, tmp_path / VENDORED_VEGA_DIR)
    return tmp_path


def test_the_page_inlines_every_vendored_script_and_loads_nothing_from_the_network(repo_root: Path) -> None:
    page = render_page(repo_root / VENDORED_VEGA_DIR)
    for script in VENDORED:
        assert (repo_root / VENDORED_VEGA_DIR / script.file).read_text(encoding="utf-8") in page
    assert all(placeholder in page for placeholder in DVC_PLACEHOLDERS)
    # DVC puts its CDN <script src> tags where a template has {scripts}: this one has no such place.
    assert "{scripts}" not in page
    assert not re.search(r"<script[^>]+src=", page)


def test_each_vendored_script_is_the_pinned_version_with_its_licence_and_readme_entry(
    repo_root: Path,
) -> None:
    readme = (repo_root / VENDORED_VEGA_DIR / "README.md").read_text(encoding="utf-8")
    for script in VENDORED:
        path = repo_root / VENDORED_VEGA_DIR / script.file
        assert (path.parent / "LICENSE").read_text(encoding="utf-8").startswith("Copyright")
        assert f'"{script.version}"' in path.read_text(encoding="utf-8"), script
        assert f"| {script.package} | {script.version} |" in readme, script


def test_write_page_builds_the_template_and_rewrites_it_only_when_it_changed(root: Path) -> None:
    assert "missing" in (page_problem(root) or "")
    page = write_page(root)
    assert page == root / PLOTS_PAGE and page_problem(root) is None
    mtime = page.stat().st_mtime_ns
    assert write_page(root).stat().st_mtime_ns == mtime
    page.write_text("stale", encoding="utf-8")
    assert "out of date" in (page_problem(root) or "")
    write_page(root)
    assert page_problem(root) is None


def test_a_missing_vendored_script_names_the_file(root: Path) -> None:
    (root / VENDORED_VEGA_DIR / VENDORED[1].file).unlink()
    with pytest.raises(UserError, match=re.escape(str(VENDORED_VEGA_DIR / VENDORED[1].file))):
        write_page(root)


def test_a_skeleton_without_dvc_placeholders_is_refused(tmp_path: Path, repo_root: Path) -> None:
    skeleton = tmp_path / "page.html"
    skeleton.write_text(SKELETON.read_text(encoding="utf-8").replace("{plot_divs}", ""), encoding="utf-8")
    with pytest.raises(UserError, match=r"page\.html: page skeleton lacks \{plot_divs\}"):
        render_page(repo_root / VENDORED_VEGA_DIR, skeleton)
