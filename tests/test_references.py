"""Standing rules for references in the repository's own text.

The design lives in docs/design.md: no file may send a reader to a contract
outside the repository, and every "docs/design.md section N" must name a
section that exists. Every test file a comment or a page names must exist,
and so must the test function it names after ``::``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "design.md"
SKIPPED_DIRS = {".git", ".venv", ".venv-agent", "build", "dist", "__pycache__", ".pytest_cache", "node_modules"}

# Written so that this file's own source does not match them.
# (Also the original contract's other files, by name, wherever they were checked out.)
OUTSIDE_CONTRACT = re.compile(r"\bDESIGN\s+section|\bDESIGN\.md\b|\bshare[d]/(?:LAYOUT|S6-NOTES|STYLE)\b")
SECTION_REFERENCE = re.compile(r"design\.md\)?\s+section\s+(\d+)", re.IGNORECASE)
TEST_FILE_REFERENCE = re.compile(r"\b(test_[a-z0-9_]+\.py)(?:::([A-Za-z_][A-Za-z0-9_]*))?")


def text_files() -> dict[str, str]:
    """Every text file of the repository (relative path -> content), build output and caches left out."""
    found = {}
    for directory, subdirs, names in os.walk(REPO):
        # Pruned in place, so os.walk never descends into the virtualenv or caches.
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in names:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            try:
                found[path.relative_to(REPO).as_posix()] = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary fixtures: nothing to read
    return found


def test_the_scan_sees_the_code_the_docs_and_the_container():
    files = text_files()
    for expected in ("docs/design.md", "hermes_lifecycle/fold.py", "Makefile", "Dockerfile",
                     "docker/rootfs/usr/local/sbin/hermes-account", "tests/test_references.py"):
        assert expected in files


def test_no_file_points_outside_the_repository_for_the_design():
    offenders = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
        for name, text in text_files().items()
        for match in OUTSIDE_CONTRACT.finditer(text)
    ]
    assert offenders == [], "the design is docs/design.md:\n" + "\n".join(offenders)


def test_every_design_section_referenced_exists():
    sections = {int(number) for number in re.findall(r"^## (\d+)\. ", DESIGN.read_text(), flags=re.M)}
    assert set(range(1, 9)) <= sections, "sections 1-8 keep the original contract's numbering"
    references = {
        (name, int(match.group(1)))
        for name, text in text_files().items()
        for match in SECTION_REFERENCE.finditer(text)
    }
    assert len(references) > 20  # the code and the docs do point there
    dangling = sorted(f"{name}: section {number}" for name, number in references if number not in sections)
    assert dangling == []


def test_every_test_file_named_exists_with_the_test_it_names():
    tests_dir = REPO / "tests"
    missing = []
    named = 0
    for name, text in text_files().items():
        for match in TEST_FILE_REFERENCE.finditer(text):
            named += 1
            test_file, test_name = match.groups()
            found = sorted(tests_dir.rglob(test_file))  # tests/ or a folder of it (tests/contract/)
            target = found[0] if found else tests_dir / test_file
            if not target.is_file():
                missing.append(f"{name}: {test_file} does not exist")
            elif test_name and not re.search(rf"^def {test_name}\(", target.read_text(), flags=re.M):
                missing.append(f"{name}: {test_file} has no {test_name}")
    assert named > 10
    assert missing == []
