"""The package layout keeps its dependency rules (``shared/tools/archcheck.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARCHCHECK = REPO.parent / "shared" / "tools" / "archcheck.py"


@pytest.mark.skipif(not ARCHCHECK.exists(), reason=f"{ARCHCHECK} is not beside the repository")
def test_archcheck_reports_no_findings() -> None:
    run = subprocess.run([sys.executable, str(ARCHCHECK), str(REPO)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("0 finding(s)"), run.stdout


SQL_BUILDERS = {"select", "update", "delete", "insert", "func", "text", "or_", "and_", "col",
                "exists", "case"}
"""Names that build SQL statements (SQLAlchemy/SQLModel); a session or engine type is not one."""


def test_no_sql_outside_the_store() -> None:
    """Only ``monitor/store/`` builds SQL: no other module imports a statement builder from
    SQLAlchemy or SQLModel (checked on the source with ``ast``)."""
    import ast

    offenders = []
    for path in (REPO / "monitor").rglob("*.py"):
        if path.relative_to(REPO / "monitor").parts[0] == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                    "sqlalchemy", "sqlmodel"):
                names = {a.name for a in node.names} & SQL_BUILDERS
                if names:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {sorted(names)}")
    assert not offenders, "\n".join(offenders)
