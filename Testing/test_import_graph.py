"""The house: the package's import graph has no circles, and DLIR inference imports without
training, training data or the simulator."""

import ast
import json
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "EchoRegistrationLib"


def _modules() -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package __init__)} of every module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """{module: modules it imports}, at any depth (inside functions too; TYPE_CHECKING blocks
    left out), each import also counting the packages whose __init__ it runs."""
    modules = _modules()

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    def packages(name: str) -> list[str]:
        parts = name.split(".")
        return [".".join(parts[:k]) for k in range(1, len(parts))]

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        here = module.split(".") if is_package else module.split(".")[:-1]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        graph[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1]) if node.level else ""
                target = ".".join(p for p in (base, node.module or "") if p)
                targets = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for name in map(known, targets):
                for imported in (name, *packages(name)) if name.startswith(PACKAGE.name) else ():
                    if imported != module and imported not in packages(module):
                        graph[module].add(imported)
    return graph


def test_import_graph_has_no_circles():
    graph = import_graph()
    assert graph["EchoRegistrationLib.registration.tracking"] >= {"EchoRegistrationLib.dlir.inference"}
    assert "EchoRegistrationLib.strain.definitions" in graph["EchoRegistrationLib.simulation.apical"]
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        raise AssertionError(f"import circle: {' -> '.join(err.args[1])}") from None


def test_dlir_inference_loads_no_training_or_simulation():
    code = ("import json, sys; import EchoRegistrationLib.dlir.inference; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('EchoRegistrationLib'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True, cwd=PACKAGE.parent).stdout)
    assert "EchoRegistrationLib.dlir.inference" in loaded and "EchoRegistrationLib.dlir.model" in loaded
    unwanted = [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in ("simulation", "strain", "registration")
                or m in ("EchoRegistrationLib.dlir.training", "EchoRegistrationLib.dlir.data",
                         "EchoRegistrationLib.dlir.evaluation", "EchoRegistrationLib.dlir.objectives")]
    assert not unwanted, unwanted
    assert len(loaded) < 40
