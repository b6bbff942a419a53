"""Every link in README.md and docs/ stays inside the repository and resolves.

A clone of the repository is all a reader has: a link to a sibling folder
(``../shared/DESIGN.md``), to a web page that may move, or to a file or heading
that was renamed leaves them stranded. Links inside fenced code and inline code
are not links and are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Pages that other work in progress writes; a link to one is checked as soon
# as it exists, and may dangle only until then. Remove each once it lands.
PENDING = {REPO / "docs" / name for name in ("subscriber.md", "linkage.md")}
PACKAGES = ("schemas", "consent", "connectors", "broker", "subscriber", "fedbroker")
_DOCS_PATH = re.compile(r"\bdocs/[\w./-]+\.md\b")

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://\S+", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    return _CODE.sub("", _FENCE.sub("", text))


def _links(text: str) -> list[str]:
    prose = _prose(text)
    found = _LINK.findall(prose) + _REFERENCE.findall(prose) + _AUTOLINK.findall(prose)
    return found + _BARE_URL.findall(_LINK.sub("", prose))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


def _problems(page: Path) -> list[str]:
    problems = []
    for target in _links(page.read_text(encoding="utf-8")):
        where = f"{page.relative_to(REPO)}: {target}"
        if _SCHEME.match(target):
            problems.append(f"{where} points outside the repository")
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(REPO):
            problems.append(f"{where} points outside the repository")
        elif not resolved.exists():
            if resolved not in PENDING:
                problems.append(f"{where} does not exist")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            problems.append(f"{where}: no heading with anchor #{fragment}")
    return problems


def test_every_link_stays_inside_the_repository_and_resolves():
    pages = _pages()
    assert len(pages) > 5  # README and the docs were found
    problems = [p for page in pages for p in _problems(page)]
    assert not problems, "bad links:\n" + "\n".join(problems)


def test_the_checker_sees_each_kind_of_bad_link(tmp_path, monkeypatch):
    # The check must be able to fail: one page with every kind of bad link.
    page = REPO / "docs" / "__probe__.md"
    text = (
        "[a](../../shared/DESIGN.md) [b](https://example.org/x) <mailto:a@b.c> "
        "see http://example.org/y [c](missing.md) [d](design.md#no-such-heading) "
        "[ok](design.md#1-the-problem) `[code](https://inside.code)`\n"
        "```\n[fenced](https://inside.fence)\n```\n"
    )
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: text if self == page else
                        Path.read_bytes(self).decode("utf-8"))  # fmt: skip
    found = _problems(page)
    assert [p.split(": ", 1)[1] for p in found] == [
        "../../shared/DESIGN.md points outside the repository",
        "https://example.org/x points outside the repository",
        "missing.md does not exist",
        "design.md#no-such-heading: no heading with anchor #no-such-heading",
        "mailto:a@b.c points outside the repository",
        "http://example.org/y points outside the repository",
    ]


def test_every_docs_page_a_docstring_names_exists():
    # A docstring that sends a reader to a page that is not there (it once
    # named docs/concepts/mapping.md before that page was written).
    sources = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    named = {
        (path.relative_to(REPO), page)
        for path in sources
        for page in _DOCS_PATH.findall(path.read_text(encoding="utf-8"))
    }
    assert named  # the scan itself works
    missing = sorted(
        f"{source}: {page}"
        for source, page in named
        if not (REPO / page).exists() and REPO / page not in PENDING
    )
    assert not missing, "pages named in docstrings that do not exist:\n" + "\n".join(missing)
