"""The import rule of ARCHITECTURE.md, checked on the source: no import cycles between modules, and
no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sandbox", "lambdasite", "accounts", "jobs", "functions", "schedules", "webhooks", "dashboard")

# lowest first; a module may import its own layer and the layers below (the first prefix that matches wins)
LAYERS = [
    ("sandbox",),
    (
        "lambdasite.env",
        "lambdasite.exceptions",
        "lambdasite.errors",
        "lambdasite.redis_client",
        "lambdasite.live",
        "lambdasite.logs",
        "lambdasite.parsers",
        "lambdasite.middleware",
        "lambdasite.fasthttp",
        "lambdasite.ssrf",
        "lambdasite.caching",
        "lambdasite.jsonbody",
        "lambdasite.threads",
    ),
    ("accounts",),
    ("jobs.models", "jobs.exceptions", "jobs.runtimes", "jobs.migrations", "jobs.signals"),
    ("functions.models", "functions.exceptions", "functions.validation", "functions.migrations"),
    ("schedules.models", "schedules.exceptions", "schedules.migrations", "schedules.signals"),
    ("webhooks.models", "webhooks.exceptions", "webhooks.migrations", "webhooks.signing"),
    ("webhooks.outbox",),  # written by the transitions that cause events, in their transactions
    (
        "jobs.billing",
        "jobs.rendering",
        "jobs.completion",
        "jobs.metrics",
        "jobs.events",
        "jobs.selectors",
        "jobs.paging",
    ),
    ("functions.selectors",),
    ("jobs.services",),
    ("functions.services",),  # a function's invocation is a job: submitted through jobs.services
    ("schedules.selectors", "schedules.services"),  # a tick submits an invocation
    ("jobs.execution", "jobs.worker", "jobs.tasks", "functions.tasks"),
    ("jobs.api", "jobs.admin", "jobs.management", "jobs.apps", "jobs"),
    ("functions.api", "functions.admin", "functions.apps", "functions"),
    ("schedules.api", "schedules.admin", "schedules.apps", "schedules"),
    ("webhooks.selectors", "webhooks.services"),  # a delivery's body is the job as the API shows it
    ("webhooks.api", "webhooks.admin", "webhooks.apps", "webhooks.management", "webhooks"),
    ("dashboard",),
    ("lambdasite",),  # settings, urls, asgi, routing and the operations views: the wiring on top
]


def layer_of(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    assert best is not None, module
    return best[0]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "images" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports (anywhere in the file, function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]  # a name, or a submodule
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(name)
        and not target.startswith(name + ".")  # a package may import its parts
    ]
    assert not upward, "\n".join(sorted(upward))


def test_there_are_no_import_cycles():
    edges = {
        name: {t for t in targets if not t.startswith(name + ".") and not name.startswith(t + ".")}
        for name, targets in graph().items()
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(trail[trail.index(target) :] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_sandbox_imports_no_django():
    for path in (ROOT / "sandbox").rglob("*.py"):
        if "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [
            n
            for n in names
            if n.split(".")[0] in ("django", "rest_framework", "accounts", "jobs", "lambdasite")
        ], path


def test_every_package_with_tests_is_collected_by_the_suite():
    """pytest only collects `testpaths`: a package whose tests are missing from it never runs in CI."""
    import configparser

    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    collected = set(ini["pytest"]["testpaths"].split())
    with_tests = {p.parent.parent.name for p in ROOT.glob("*/tests/test_*.py")}
    assert with_tests - collected == set()
