"""The source tree's shape (DESIGN.md, issue 15 item 1): no import cycles anywhere, the contract
(protocol/) imports neither side, head office (hq/) imports nothing of the terminal, and head office
installs and runs without any device driver package.

Imports are read from the source (every `import`, also those inside functions), so an import moved
into a function to hide a cycle still counts.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "drivers", "flows", "offline", "hq", "protocol")
DRIVER_DISTRIBUTIONS = ("pyscard", "opencv", "bleak", "pyserial", "pyttsx3", "escpos", "gpiozero")
# aiohttp is not among them: head office serves the monitoring centre's page with it (the hq extra names it)
DRIVER_MODULES = ("smartcard", "cv2", "bleak", "serial", "pyttsx3", "escpos", "gpiozero", "sqlite_utils")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> set[str]:
    """Every project module `path` imports, anywhere in the file (`from pkg import mod` names mod)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                names.add(sub if sub in MODULES else node.module)
    resolved = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            resolved.add(name)
    return resolved


GRAPH = {name: _imported(path) - {name} for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's, without recursion)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_whole_tree():
    assert len(MODULES) > 50, "the tree was not found"
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("side,forbidden", [
    ("protocol", ("agent", "drivers", "offline", "hq")),
    ("hq", ("agent", "drivers", "offline")),
    ("flows", ("agent", "drivers", "offline", "hq", "protocol")),
])
def test_a_side_imports_nothing_of_the_other(side, forbidden):
    wrong = sorted(f"{name} imports {dep}" for name, deps in GRAPH.items() if name.split(".")[0] == side
                   for dep in deps if dep.split(".")[0] in forbidden)
    assert wrong == []


def test_head_office_install_names_no_device_driver_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    hq_install = project["dependencies"] + project["optional-dependencies"]["hq"]
    assert any(d.startswith("psycopg") for d in hq_install)
    assert [d for d in hq_install if d.lower().startswith(DRIVER_DISTRIBUTIONS)] == []
    assert project["scripts"]["handover-hq"] == "hq.cli:main"


# Run in a fresh interpreter where the device driver libraries and the terminal's packages cannot be
# imported at all: every hq and protocol module must still import, and the CLI must build its parser.
_BLOCKED_RUN = """
import importlib, sys
BLOCKED = set(sys.argv[1].split(","))

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed at head office")
        return None

sys.meta_path.insert(0, Blocker())
for name in sys.argv[2].split(","):
    importlib.import_module(name)
from hq.cli import build_parser
commands = build_parser()._subparsers._group_actions[0].choices
print(" ".join(sorted(commands)))
"""


def test_every_head_office_module_imports_without_the_terminal_or_its_drivers():
    names = sorted(n for n in MODULES if n.split(".")[0] in ("hq", "protocol"))
    assert "hq.serve" in names and "hq.db" in names and "protocol.chain" in names
    blocked = ",".join(DRIVER_MODULES + ("agent", "drivers", "offline", "flows"))
    r = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, blocked, ",".join(names)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    commands = r.stdout.split()
    for command in ("keys", "issue-cert", "pack", "inspect", "publish", "watch", "export", "serve", "verify-against",
                    "user"):
        assert command in commands


def test_the_blocker_does_block():
    """The run above proves something only if a blocked import really fails there."""
    r = subprocess.run([sys.executable, "-c", _BLOCKED_RUN, "agent", "agent.journal"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "not installed at head office" in r.stderr
