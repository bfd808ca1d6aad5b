"""The documentation's relative links resolve, and the README stays a short front door.

Every relative link in README.md, docs/*.md, crowd_client/README.md and bench/README.md must name
a file or folder of the repository and, when it carries a `#anchor` into a Markdown file, a
heading of that file under GitHub's slug rules. Text in code (fenced blocks and inline code
spans) holds no links. The checker itself is tested on made-up pages, so a broken link cannot
pass unnoticed.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_BYTES = 15 * 1024

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def doc_files(root: Path = ROOT) -> list[Path]:
    """The pages whose links are checked."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            root / "crowd_client" / "README.md", root / "bench" / "README.md"]


def prose_lines(text: str) -> Iterable[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, backticks and punctuation other than
    '-' and '_' removed, lowercase, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor the headings of a Markdown text produce (a repeated slug gets -1, -2...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """The targets of the Markdown links in a text, code left out."""
    found = []
    for line in prose_lines(text):
        found += LINK.findall(INLINE_CODE.sub("", line))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of one page, one line per broken link."""
    problems = []
    name = page.relative_to(root)
    for target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = page if not path else (root / path.lstrip("/") if path.startswith("/")
                                          else page.parent / path).resolve()
        if not resolved.exists():
            problems.append(f"{name}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and \
                anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{name}: {target}: no heading makes #{anchor}")
        elif anchor and resolved.is_dir():
            problems.append(f"{name}: {target}: an anchor into a folder")
    return problems


def test_every_relative_link_in_the_docs_resolves():
    pages = doc_files()
    assert all(page.exists() for page in pages), [p for p in pages if not p.exists()]
    assert len(pages) >= 8  # README, the docs/ pages, crowd_client's and bench's
    relative = [t for page in pages for t in links(page.read_text(encoding="utf-8"))
                if not SCHEME.match(t)]
    assert len([t for t in relative if "#" in t]) > 30  # the scan does find the links
    problems = [problem for page in pages for problem in broken_links(page)]
    assert problems == [], "\n".join(problems)


def test_the_readme_is_at_most_15_kib():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_slugs_follow_github():
    assert slug("`POST /quotes` (client)") == "post-quotes-client"
    assert slug("`GET /jobs/{job_id}/report` (client)") == "get-jobsjob_idreport-client"
    assert slug("Crashes and repeats (fault injection)") == "crashes-and-repeats-fault-injection"
    assert slug("Chalice's limits that matter") == "chalices-limits-that-matter"
    assert slug("Skills, qualification tests and cohorts") == "skills-qualification-tests-and-cohorts"
    assert slug("Idempotency-Key") == "idempotency-key"
    assert slug("See [the API](api.md) now") == "see-the-api-now"


def test_the_checker_reports_each_broken_link(tmp_path):
    # GIVEN two made-up pages with good links, broken ones, and link-like text in code
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text(
        "# B\n\n## Money\n\n## Money\n\n```\n## Not a heading\n```\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[good](docs/b.md) [anchor](docs/b.md#money) [repeat](docs/b.md#money-1) "
        "[self](#top) [folder](docs/) [web](https://example.com/x.md#nope)\n"
        "[missing file](docs/c.md) [missing anchor](docs/b.md#pool) "
        "[fenced heading](docs/b.md#not-a-heading) [own anchor](#bottom)\n"
        "`[in code](docs/nothing.md)`\n\n```\n[fenced](docs/nothing.md)\n```\n",
        encoding="utf-8")
    # WHEN the README's links are checked
    problems = broken_links(tmp_path / "README.md", root=tmp_path)
    # THEN exactly the four broken ones are reported
    assert problems == [
        "README.md: docs/c.md: no such file",
        "README.md: docs/b.md#pool: no heading makes #pool",
        "README.md: docs/b.md#not-a-heading: no heading makes #not-a-heading",
        "README.md: #bottom: no heading makes #bottom",
    ]
