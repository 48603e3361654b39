"""Every doc the code cites ships in docs/, and every cited section anchor exists there."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("crbench", "baselines", "data_recipes", "benchmarks")
CITATION = re.compile(r"\b(physics|anchors|formats|design)\.md(?:#([\w-]+))?")
DOC_LINK = re.compile(r"\]\((\w+)\.md#([\w-]+)\)|\]\(#([\w-]+)\)")


def _anchors(doc: Path) -> set[str]:
    """GitHub-style anchors of the ## and ### headings of a markdown file."""
    heads = re.findall(r"^#{1,4} (.+)$", doc.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def _citations() -> list[tuple[str, str, str | None]]:
    out = []
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            for m in CITATION.finditer(path.read_text(encoding="utf-8")):
                out.append((str(path.relative_to(ROOT)), m.group(1), m.group(2)))
    return out


def test_the_code_cites_docs() -> None:
    assert _citations(), "no citation of docs/*.md found: the scan pattern is stale"


@pytest.mark.parametrize("name", sorted({c[1] for c in _citations()}))
def test_cited_doc_ships_in_the_repository(name: str) -> None:
    assert (ROOT / "docs" / f"{name}.md").is_file(), f"code cites {name}.md but docs/{name}.md is missing"


def test_cited_anchors_exist() -> None:
    missing = [f"{where}: {name}.md#{anchor}" for where, name, anchor in _citations()
               if anchor and (not (ROOT / "docs" / f"{name}.md").is_file()
                              or anchor not in _anchors(ROOT / "docs" / f"{name}.md"))]
    assert not missing, "cited sections missing from docs/: " + "; ".join(missing)


@pytest.mark.parametrize("name", ["physics", "anchors", "formats"])
def test_links_between_docs_resolve(name: str) -> None:
    doc = ROOT / "docs" / f"{name}.md"
    bad = []
    for m in DOC_LINK.finditer(doc.read_text(encoding="utf-8")):
        target, anchor = (m.group(1), m.group(2)) if m.group(1) else (name, m.group(3))
        path = ROOT / "docs" / f"{target}.md"
        if not path.is_file() or anchor not in _anchors(path):
            bad.append(m.group(0))
    assert not bad, f"docs/{name}.md: broken links {bad}"


def test_every_citation_names_a_repo_doc_and_section() -> None:
    """Citations read ``docs/<file>.md#<anchor>``: a path a user of the repo has, and the section that
    holds the fact; never the design notes outside the repo."""
    cite = re.compile(r"(\S*?)\b(physics|anchors|formats|design)\.md(#[\w-]+)?")
    bad = []
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for m in cite.finditer(text):
                if m.group(2) == "design" or not m.group(1).endswith("docs/") or m.group(1).endswith("shared/docs/") \
                        or not m.group(3):
                    bad.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}")
    assert not bad, "citations without docs/ path or #section: " + "; ".join(bad)
