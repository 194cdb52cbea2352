"""The HTML page `dvc plots show` and `dvc plots diff` fill, with the Vega scripts inline.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so on a machine without
internet it stays blank. `.dvc/config` sets `plots.html_template` to layout.PLOTS_PAGE, which this
module builds from the npm bundles vendored in vendor/vega/ (versions in VENDORED, licences
beside the files). Inline rather than linked: DVC writes the page wherever `-o` says, and a
copied page keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aistudio.errors import UserError
from aistudio.io import atomic_writer
from aistudio.layout import DVC_DIR, PLOTS_PAGE, VENDORED_VEGA_DIR

# As .dvc/config names it (DVC reads plots.html_template relative to .dvc/); built, not committed.
PAGE_IN_DVC_DIR = PLOTS_PAGE.relative_to(DVC_DIR)
SKELETON = Path(__file__).with_name("page.html")
SCRIPTS_MARKER = "<!-- aistudio:vendored-scripts -->"
# DVC fills these two; a page without plot_divs is refused by dvc-render.
DVC_PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}")


@dataclass(frozen=True)
class VendoredScript:
    package: str
    version: str
    file: str  # relative to VENDORED_VEGA_DIR

    def describe(self) -> str:
        return (
            f"{self.package}@{self.version} ({self.file}, BSD-3-Clause, licence in {Path(self.file).parent}/)"
        )


# In load order: vega-lite needs vega, vega-embed needs both.
VENDORED: tuple[VendoredScript, ...] = (
    VendoredScript("vega", "6.4.0", "vega/vega.min.js"),
    VendoredScript("vega-lite", "6.5.0", "vega-lite/vega-lite.min.js"),
    VendoredScript("vega-embed", "7.3.0", "vega-embed/vega-embed.min.js"),
)


def _script_tag(vendor_dir: Path, script: VendoredScript) -> str:
    path = vendor_dir / script.file
    if not path.is_file():
        readme = VENDORED_VEGA_DIR / "README.md"
        raise UserError(f"{path}: missing vendored script; restore it from git (see {readme})")
    source = path.read_text(encoding="utf-8")
    # An inline script ends at the first "</script", wherever it appears.
    if "</script" in source.lower():
        raise UserError(f"{path}: contains '</script' and cannot be inlined; vendor another build")
    return f"<script>/* {script.describe()} */\n{source}\n</script>"


def render_page(vendor_dir: Path = VENDORED_VEGA_DIR, skeleton: Path = SKELETON) -> str:
    """The page template: DVC's placeholders kept, the vendored scripts inline at SCRIPTS_MARKER."""
    text = skeleton.read_text(encoding="utf-8")
    missing = [p for p in (SCRIPTS_MARKER, *DVC_PLACEHOLDERS) if p not in text]
    if missing:
        raise UserError(f"{skeleton}: page skeleton lacks {', '.join(missing)}")
    scripts = "\n".join(_script_tag(Path(vendor_dir), s) for s in VENDORED)
    return text.replace(SCRIPTS_MARKER, scripts)


def write_page(root: Path = Path(".")) -> Path:
    """Build PLOTS_PAGE under `root` (what `make setup` runs); rewritten only when its content changes."""
    root = Path(root)
    page = root / PLOTS_PAGE
    text = render_page(root / VENDORED_VEGA_DIR)
    if not page.is_file() or page.read_text(encoding="utf-8") != text:
        with atomic_writer(page) as out:
            out.write(text)
    return page


def page_problem(root: Path) -> str | None:
    """Why `dvc plots show` would not get the offline page at `root`, or None."""
    page = Path(root) / PLOTS_PAGE
    if not page.is_file():
        return f"{PLOTS_PAGE}: missing (the offline `dvc plots` page); run `make setup`"
    if page.read_text(encoding="utf-8") != render_page(Path(root) / VENDORED_VEGA_DIR):
        return f"{PLOTS_PAGE}: out of date with {VENDORED_VEGA_DIR}/ or {SKELETON.name}; run `make setup`"
    return None
