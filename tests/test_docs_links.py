"""Relative links in the Markdown documentation resolve: the file exists and the #anchor names a heading.

Pure file reading (no TVM, no torch). Checked files: README.md, docker/README.md and every docs/*.md.
A link is `[text](target)` outside fenced code blocks and inline code; http(s) and mailto targets are
not checked. An anchor must equal the GitHub slug of a heading in the target file: lowercase,
punctuation other than '-' and '_' dropped, each space turned into '-', and '-1', '-2', ... appended
to repeated slugs.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 260

# Links in docker/README.md that were already broken when this test was written, left as they are
# (that file is maintained with the images); (file relative to the root, target). None today.
KNOWN_BROKEN: set[tuple[str, str]] = set()

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", root / "docker" / "README.md", *sorted((root / "docs").glob("*.md"))]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            out.append((number, line))
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def heading_anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            anchors.add(f"{slug}-{seen[slug]}")
        else:
            seen[slug] = 0
            anchors.add(slug)
    return anchors


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every relative link in a Markdown file."""
    found = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        line = _CODE_SPAN.sub("code", line)
        for match in _LINK.finditer(line):
            target = match.group(1)
            if not _EXTERNAL.match(target):
                found.append((number, target))
    return found


def broken_links(files: list[Path], root: Path = ROOT) -> list[str]:
    """One line per link whose file is missing or whose anchor names no heading of its Markdown file."""
    problems = []
    anchor_cache: dict[Path, set[str]] = {}
    for md in files:
        shown = md.relative_to(root) if md.is_relative_to(root) else md
        for number, target in links(md):
            if (str(shown), target) in KNOWN_BROKEN:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md.resolve()
            if not dest.exists():
                problems.append(f"{shown}:{number}: {target}: no such file {file_part}")
                continue
            if not anchor:
                continue
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{shown}:{number}: {target}: an anchor into a file that is not Markdown")
                continue
            if dest not in anchor_cache:
                anchor_cache[dest] = heading_anchors(dest)
            if anchor not in anchor_cache[dest]:
                problems.append(f"{shown}:{number}: {target}: no heading with the anchor #{anchor}")
    return problems


def test_every_relative_link_resolves():
    files = markdown_files()
    assert all(f.exists() for f in files)
    assert len(files) > 3, "docs/ holds the documentation pages"
    problems = broken_links(files)
    assert not problems, f"{len(problems)} broken link(s):\n" + "\n".join(problems)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES}); move detail into docs/"


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "data.txt").write_text("x\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# A page: with *punctuation* (and `code`)\n\n## Repeated\n\n## Repeated\n\n"
        "[ok](#a-page-with-punctuation-and-code) [ok](#repeated-1) [ok](../data.txt) [ok](../README.md#top)\n"
        "[ok](https://example.com/missing) `[not a link](missing.md)`\n\n"
        "```\n[not a link](missing.md)\n# not a heading\n```\n"
    )
    (tmp_path / "README.md").write_text(
        "# Top\n\n[ok](docs/page.md#repeated) [bad file](docs/missing.md) [bad anchor](docs/page.md#not-a-heading)\n"
        "[bad own anchor](#nowhere) [anchor into text](data.txt#x) [ok](docs/)\n[bad](docs/page.md#repeated-2)\n"
    )
    problems = broken_links([tmp_path / "README.md", page], root=tmp_path)
    assert len(problems) == 5, problems
    assert problems[0] == "README.md:3: docs/missing.md: no such file docs/missing.md"
    assert "README.md:3: docs/page.md#not-a-heading: no heading with the anchor #not-a-heading" in problems
    assert "README.md:4: #nowhere: no heading with the anchor #nowhere" in problems
    assert "README.md:4: data.txt#x: an anchor into a file that is not Markdown" in problems
    assert "README.md:5: docs/page.md#repeated-2: no heading with the anchor #repeated-2" in problems
