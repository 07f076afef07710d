"""The floors of the package, read from its imports (ast, nothing is imported).

- No module outside ``store/`` imports ``sqlite3`` or ``toombos_edge.store.sqlite``, except
  the composition root that opens the file and builds the SQLite stores.
- A record module (``records/``) imports nothing above the foundation (records, errors,
  ids, logs): no service package, nothing of ``store/``.
- A module of ``store/`` (the protocols and ``store/sqlite/``) imports only ``store/``
  and the foundation: never a service package (jobs, documents, content, cache …).

An import counts for the module that defines the name: ``from ..store import Database``
is an import of ``store.sqlite.database`` (``store/__init__.py`` re-exports it), so a
re-export cannot hide a way around a floor.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import toombos_edge

PACKAGE = Path(toombos_edge.__file__).resolve().parent
NAME = "toombos_edge"

#: The modules every floor may use: they import nothing of the package but each other
#: (``logs``: the ``Actor`` a job record names; checked below).
FOUNDATION = ("records", "errors", "ids", "logs")
#: Where the SQLite file is opened and the SQLite stores are built and handed to the
#: services; ``appkeys`` declares the app's key for the database the root opens.
COMPOSITION_ROOT = frozenset({"app", "cli", "appkeys", "backends"})

DRIVER = "sqlite3"
SQLITE_STORE = "store.sqlite"

#: Known violations, (module, rule) → why, while a move is under way; empty since every
#: aggregate's SQL sits in ``store/sqlite/``. An entry that no longer violates fails the
#: test, so that the list only shrinks.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, slots=True)
class Violation:
    module: str  #: dotted, without the package's name
    rule: str  #: "driver", "records" or "store"
    target: str  #: what it imports

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} ({self.rule} rule)"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name ('' for the package)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _within(name: str, area: str) -> bool:
    return name == area or name.startswith(area + ".")


class Imports:
    """The imports of one package, each resolved to the module that defines the name."""

    def __init__(self, root: Path, package: str) -> None:
        self.package = package
        self.files = modules(root)
        self._trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
                       for name, path in self.files.items()}

    def _absolute(self, module: str, node: ast.ImportFrom) -> str | None:
        """The dotted name (inside the package, '' for it) ``node`` imports from; None
        for a module outside the package."""
        if node.level == 0:
            name = node.module or ""
            if name == self.package:
                return ""
            prefix = self.package + "."
            return name[len(prefix):] if name.startswith(prefix) else None
        is_package = self.files[module].name == "__init__.py"
        base = module.split(".") if module else []
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, *(node.module or "").split(".")]).strip(".")

    def origin(self, module: str, name: str, seen: frozenset[str] = frozenset()) -> str:
        """The module that defines ``name`` imported from ``module`` (a submodule, or
        the module a re-export comes from)."""
        child = f"{module}.{name}" if module else name
        if child in self.files:
            return child
        if name == "*" or module in seen or module not in self._trees:
            return module
        for node in self._trees[module].body:
            if isinstance(node, ast.ImportFrom):
                source = self._absolute(module, node)
                for alias in node.names:
                    if source is not None and (alias.asname or alias.name) == name:
                        return self.origin(source, alias.name, seen | {module})
        return module

    def of(self, module: str) -> set[str]:
        """What ``module`` imports: package modules by dotted name, ``sqlite3`` as is;
        anywhere in the module (functions and ``TYPE_CHECKING`` blocks too)."""
        found: set[str] = set()
        for node in ast.walk(self._trees[module]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == DRIVER:
                        found.add(DRIVER)
                    elif alias.name.startswith(self.package + "."):
                        found.add(alias.name[len(self.package) + 1:])
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and (node.module or "").split(".")[0] == DRIVER:
                    found.add(DRIVER)
                    continue
                source = self._absolute(module, node)
                if source is not None:
                    found.update(self.origin(source, alias.name) for alias in node.names)
        return found


def violations(root: Path, package: str) -> list[Violation]:
    """Every import of the package at ``root`` that breaks a floor (module docstring)."""
    graph = Imports(root, package)
    found = []
    for module in graph.files:
        for target in sorted(graph.of(module)):
            in_package = target != DRIVER
            low = in_package and any(_within(target, area) for area in FOUNDATION)
            if _within(module, "store"):
                if in_package and not (low or _within(target, "store")):
                    found.append(Violation(module, "store", target))
            elif _within(module, "records"):
                if in_package and not low:
                    found.append(Violation(module, "records", target))
            elif (target == DRIVER or _within(target, SQLITE_STORE)) and (
                    module not in COMPOSITION_ROOT):
                found.append(Violation(module, "driver", target))
    return found


def _unexpected(found: list[Violation]) -> list[str]:
    return [str(v) for v in found if (v.module, v.rule) not in ALLOWED]


def test_no_floor_is_crossed() -> None:
    """sqlite3 stays in store/ and the composition root; records and store/ import no
    service package (the allow-list names the moves still going on)."""
    crossings = _unexpected(violations(PACKAGE, NAME))
    assert not crossings, "floors crossed:\n" + "\n".join(crossings)


def test_the_allow_list_only_shrinks() -> None:
    """Each allowed module still breaks its rule: one that was moved leaves the list."""
    found = {(v.module, v.rule) for v in violations(PACKAGE, NAME)}
    moved = sorted(set(ALLOWED) - found)
    assert not moved, f"no longer violations, take them off ALLOWED: {moved}"


def test_the_foundation_imports_only_itself() -> None:
    """errors, ids and logs are below every floor: they import nothing else of ours."""
    graph = Imports(PACKAGE, NAME)
    for module in FOUNDATION[1:]:
        above = {t for t in graph.of(module) if t != DRIVER
                 and not any(_within(t, area) for area in FOUNDATION)}
        assert above == set(), module


def _package(root: Path, files: dict[str, str]) -> Path:
    """A small package ``demo`` at ``root`` with the package's floors."""
    base = {
        "__init__.py": "",
        "errors.py": "class Invalid(Exception): ...\n",
        "ids.py": "",
        "logs.py": "",
        "records/__init__.py": "",
        "records/key.py": "from ..ids import *\n",
        "store/__init__.py": "from .sqlite.database import Database\n",
        "store/keys.py": "from ..records.key import *\n",
        "store/sqlite/__init__.py": "",
        "store/sqlite/database.py": "import sqlite3\nclass Database: ...\n",
        "store/sqlite/keys.py": "import sqlite3\nfrom .database import Database\n",
        "jobs/__init__.py": "from .service import Service\n",
        "jobs/service.py": "from ..store.keys import *\nclass Service: ...\n",
        "app.py": "from .store.sqlite.keys import *\n",
    }
    for name, text in {**base, **files}.items():
        path = root / "demo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "demo"


def test_a_clean_package_passes(tmp_path: Path) -> None:
    assert violations(_package(tmp_path, {}), "demo") == []


def test_each_new_violation_is_caught(tmp_path: Path) -> None:
    """The checks fail on a crossing of each kind, also through a re-export or a
    function-level import."""
    cases = {
        "jobs/runner.py": ("import sqlite3\n", "jobs.runner imports sqlite3 (driver rule)"),
        "jobs/lazy.py": ("def f():\n    from sqlite3 import connect\n",
                         "jobs.lazy imports sqlite3 (driver rule)"),
        "jobs/direct.py": ("from ..store.sqlite import keys\n",
                           "jobs.direct imports store.sqlite.keys (driver rule)"),
        "jobs/reexport.py": ("from ..store import Database\n",
                             "jobs.reexport imports store.sqlite.database (driver rule)"),
        "jobs/absolute.py": ("import demo.store.sqlite.database\n",
                             "jobs.absolute imports store.sqlite.database (driver rule)"),
        "records/job.py": ("from ..jobs import Service\n",
                           "records.job imports jobs.service (records rule)"),
        "records/stored.py": ("from ..store.keys import *\n",
                              "records.stored imports store.keys (records rule)"),
        "store/jobs.py": ("from ..jobs.service import Service\n",
                          "store.jobs imports jobs.service (store rule)"),
        "store/sqlite/jobs.py": ("from ...jobs import Service\n",
                                 "store.sqlite.jobs imports jobs.service (store rule)"),
    }
    for name, (text, expected) in cases.items():
        root = _package(tmp_path / name.replace("/", "_"), {name: text})
        assert [str(v) for v in violations(root, "demo")] == [expected], name
