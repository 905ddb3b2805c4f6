"""The layering contract: data flows one way (cli → pipeline → build/measure → axes → core), with no
import cycle and no function-level import that only dodges one. Parsed from the source, no imports run.

Each package of bench/ (and frontends/) has a rank; a module may import from packages of lower rank,
and from its own package as long as the module graph has no cycle. A function-level import of the
harness's own code is allowed in two cases only, both to keep `gptbench --help`, `models` and usage
errors light (tests/test_cli_light.py): in bench/cli.py (each command loads its modules when it runs),
and where a light module imports a heavy one (one that loads torch, TVM, numpy, ONNX or pandas when
imported)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower rank = lower layer. Packages of equal rank do not import each other.
RANKS = {
    "bench.core": 0,
    "bench.record": 1, "bench.targets": 1, "frontends": 1,
    "bench.measure": 2,
    "bench.models": 3,
    "bench.scenarios": 4,
    "bench.build": 5,
    "bench.tuning": 6, "bench.baselines": 6,
    "bench.pipeline": 7,
    "bench.reports": 8,
    "bench.compare": 9,
    "bench.ab": 10, "bench.history": 10,
    "bench.bisect": 11,
    "bench.cli": 12,
    "bench": 13,  # bench/__init__.py: the version and warning filters only
}
HEAVY = ("torch", "tvm", "tvm_ffi", "numpy", "onnx", "onnxruntime", "pandas", "matplotlib", "scipy", "transformers")
LAZY_OK_IN = {"bench.cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in sorted([*ROOT.joinpath("bench").rglob("*.py"), *ROOT.joinpath("frontends").rglob("*.py")]):
        parts = p.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


MODULES = _modules()


def package(mod: str) -> str:
    for pkg in sorted(RANKS, key=len, reverse=True):
        if mod == pkg or mod.startswith(pkg + "."):
            return pkg
    raise AssertionError(f"{mod}: in no package of RANKS; give its package a rank")


def _imports(mod: str):
    """(target module, line, at top level?, third-party root or None) for every import in mod."""
    tree = ast.parse(MODULES[mod].read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif node.level:
            raise AssertionError(f"{MODULES[mod]}:{node.lineno}: relative import; write the absolute module")
        else:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names]
        for name in names:
            internal = next((m for m in (name, name.rsplit(".", 1)[0]) if m in MODULES), None)
            yield internal, node.lineno, id(node) in top, None if internal else name.split(".")[0]


EDGES = {m: list(_imports(m)) for m in MODULES}


def _heavy() -> set[str]:
    heavy = {m for m, edges in EDGES.items() if any(top and ext in HEAVY for _t, _l, top, ext in edges)}
    while True:
        more = {m for m, edges in EDGES.items() if m not in heavy and any(top and t in heavy for t, _l, top, _e in edges)}
        if not more:
            return heavy
        heavy |= more


def test_every_module_has_a_ranked_package():
    for mod in MODULES:
        package(mod)


def test_imports_point_down():
    bad = []
    for mod, edges in EDGES.items():
        for target, line, _top, _ext in edges:
            if target is None or target == mod:
                continue
            a, b = package(mod), package(target)
            if a != b and RANKS[a] <= RANKS[b]:
                bad.append(f"{MODULES[mod].relative_to(ROOT)}:{line}: {mod} ({a}, rank {RANKS[a]}) imports {target} ({b}, rank {RANKS[b]})")
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = {m: {t for t, _l, _top, _e in edges if t and t != m and not (m.startswith(t + ".") and MODULES[t].name == "__init__.py")}
             for m, edges in EDGES.items()}
    # a package's __init__ importing its own submodules, and a submodule importing its package, is one
    # cycle Python resolves by order; keep the rule strict: no cycle at all, except a package's own
    # submodule reaching the package __init__ (the registry) that does not import it back.
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" → ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_function_level_imports_only_keep_light_modules_light():
    heavy = _heavy()
    bad = []
    for mod, edges in EDGES.items():
        for target, line, top, _ext in edges:
            if target is None or top or mod in LAZY_OK_IN:
                continue
            if mod in heavy or target not in heavy:
                why = "it is heavy itself" if mod in heavy else f"{target} is light"
                bad.append(f"{MODULES[mod].relative_to(ROOT)}:{line}: {mod} imports {target} inside a function, but {why}: "
                           "import it at the top")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_ones_private_names():
    """A name with a leading underscore is its module's own: another module that needs it needs a public name."""
    bad = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("bench", "frontends"):
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {mod} imports {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("registry", ["bench.models:MODELS", "frontends:FRONTENDS", "bench.targets:TARGET_LIST",
                                      "bench.baselines:BASELINE_LIST", "bench.scenarios:SCENARIOS", "bench.core.tvm_envs:ENVS",
                                      "bench.models.families:FAMILY_LIST"])
def test_registries_have_unique_names(registry):
    import importlib

    mod, name = registry.split(":")
    table = getattr(importlib.import_module(mod), name)
    names = [getattr(entry, "name", entry) for entry in table]
    assert names and len(names) == len(set(names)), f"{registry}: {names}"


# Functions longer than MAX_FUNCTION_LINES (def line to last line, decorators not counted), each with the
# reason it stays long. A new long function fails test_no_long_functions; so does an entry here that is no
# longer long (remove it).
MAX_FUNCTION_LINES = 50
LONG_FUNCTIONS: dict[str, str] = {}  # "module:function" -> why it stays longer than 50 lines


def _function_lengths():
    """{"module:Class.function": lines} for every function and method in bench/ and frontends/."""
    lengths = {}

    def walk(mod, node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{mod}:{prefix}{child.name}"] = child.end_lineno - child.lineno + 1
                walk(mod, child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(mod, child, f"{prefix}{child.name}.")
            else:
                walk(mod, child, prefix)

    for mod, path in MODULES.items():
        walk(mod, ast.parse(path.read_text()), "")
    return lengths


def test_no_long_functions():
    lengths = _function_lengths()
    long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    new = [f"{name}: {n} lines" for name, n in sorted(long.items()) if name not in LONG_FUNCTIONS]
    stale = [f"{name}: {lengths.get(name, 'gone')}" for name in sorted(LONG_FUNCTIONS) if name not in long]
    assert not new, (f"functions over {MAX_FUNCTION_LINES} lines: split them into named steps, or add them to "
                     "LONG_FUNCTIONS with the reason they stay long:\n" + "\n".join(new))
    assert not stale, f"LONG_FUNCTIONS entries no longer over {MAX_FUNCTION_LINES} lines: remove them:\n" + "\n".join(stale)


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {e.id for t in targets for e in ast.walk(t) if isinstance(e, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


DOTTED = re.compile(r"\b(?:bench|frontends)(?:\.[A-Za-z_]\w*)+")


def test_every_dotted_path_in_a_docstring_names_what_exists():
    """`bench.x.y` in a docstring is a module of the repository, or a name defined at the top of one."""
    bad = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dotted in DOTTED.findall(ast.get_docstring(node) or ""):
                parts = dotted.split(".")
                k = max((i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES), default=0)
                if k == 0 or (parts[k:] and parts[k] not in _top_level_names(MODULES[".".join(parts[:k])])):
                    bad.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}: {dotted}")
    assert not bad, "names in docstrings that do not exist:\n" + "\n".join(bad)
