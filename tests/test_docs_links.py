"""Every relative link in the README and docs/ resolves, and every `docs/...` path they name exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _broken(page: Path) -> list[str]:
    text, broken = page.read_text(), []
    for match in re.finditer(r"\]\(([^)\s]+)\)", text):  # [text](target): relative to the page
        target = match.group(1).split("#")[0]
        if target and not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
            broken.append(target)
    for match in re.finditer(r"`(docs/[^`\s*{}<>]+)`", text):  # `docs/...`: from the repository root
        if not (ROOT / match.group(1).rstrip(".,:;")).exists():
            broken.append(match.group(1))
    return broken


def test_links_and_docs_paths_resolve() -> None:
    broken = {str(page.relative_to(ROOT)): b for page in PAGES if (b := _broken(page))}
    assert not broken, broken
