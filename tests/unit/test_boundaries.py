"""The service boundaries hold: `lint-imports` refuses a service importing another, contracts
importing services, the runtime importing a service, and a pure module reaching an I/O library.

Each check runs the project's own contracts (pyproject.toml) against a copy of the packages
with such imports put back, so the linter is shown to catch them, not only to pass today.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# One import put back for each contract; the first two were among the 20 cross-service lines.
PUT_BACK = {
    "services/review/policy.py": "from services.binding.rules import KINDS",
    "services/binding/rules.py": "from services.identity.password import DEFAULT_LOCKOUT",
    "contracts/vocabulary.py": "from services.review.events import CaseType",
    "services/runtime/codec.py": "from services.identity.errors import IdentityError",
    "services/review/domain.py": "from services.runtime.auth import require",
}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the copy's packages, not the installed ones
    return subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_with_imports_put_back(tmp_path: Path) -> Path:
    for package in ("contracts", "services"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for path, line in PUT_BACK.items():
        with (tmp_path / path).open("a", encoding="utf-8") as module:
            module.write(f"\n{line}  # put back by the test\n")
    return tmp_path


def test_the_packages_keep_every_import_contract() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 kept, 0 broken" in run.stdout


def test_each_import_put_back_breaks_its_contract(tmp_path: Path) -> None:
    run = lint_imports(copy_with_imports_put_back(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "0 kept, 4 broken" in run.stdout
    for shown in (
        "services.review is not allowed to import services.binding",
        "services.binding is not allowed to import services.identity",
        "contracts is not allowed to import services",
        "services.runtime is not allowed to import services.identity",
        "services.review.domain is not allowed to import fastapi",
    ):
        assert shown in run.stdout, run.stdout
