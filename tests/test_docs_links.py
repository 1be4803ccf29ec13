"""Every relative link in the hand-written docs resolves: the file or folder exists, and a #fragment names a
heading of the linked page (GitHub's anchors). The docs were moved between pages once already; this keeps a
moved section from leaving a dead link behind. External links (http, https, mailto) are not fetched, and the
report.md pages that experiments generate are not checked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED_PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs/results").glob("**/README.md")]
)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) or ![alt](target), with an optional "title"; the text may hold `code` but no brackets.
LINK = re.compile(r"!?\[[^\[\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lowercased, punctuation other than - and _ dropped, spaces to -."""
    text = INLINE_CODE.sub(lambda code: code.group(0)[1:-1], heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        found.add(anchor if count == 0 else f"{anchor}-{count}")
        seen[anchor] = count + 1
    return found


def links(page: Path) -> list[str]:
    """The link targets of a page, outside fenced code blocks."""
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` that names no file or folder, or an anchor its page does not have."""
    broken = []
    for target in links(page):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and linked.suffix == ".md" and unquote(fragment).lower() not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", CHECKED_PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checked_pages_are_the_docs() -> None:
    """The glob finds the pages (a moved docs folder would otherwise leave nothing to check)."""
    names = {str(page.relative_to(ROOT)) for page in CHECKED_PAGES}
    assert {"README.md", "docs/method.md", "docs/results/README.md"} <= names
    assert not any(name.endswith("report.md") for name in names)
    assert sum(len(links(page)) for page in CHECKED_PAGES) > 100


def test_checker_finds_planted_dead_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Central DP: fixed or Poisson (issue #36)\n\n## Twice\n\n## Twice\n")
    (tmp_path / "folder").mkdir()
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n"
        "[ok](other.md#central-dp-fixed-or-poisson-issue-36) [ok](other.md#twice-1) [ok](#top)\n"
        "[ok](folder/)\n"
        "[`ok`](https://example.org/missing.md) ![ok](other.md)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) [bad local](#bottom)\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "other.md#nowhere (no such heading)",
        "#bottom (no such heading)",
    ]
