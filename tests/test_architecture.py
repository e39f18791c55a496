"""The package's shape: layers import downwards only, no import cycle (at module or function
level), ``supplychain`` stands apart, and ``python -m labkit scan`` never needs PyTorch."""
import ast
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "labkit"

#: Top-level name inside labkit -> layer (higher may import lower, never the reverse).
LAYERS = {
    "types": 0, "rng": 0, "compute": 0, "optim": 0, "data": 0, "text": 0, "rag": 0, "models": 0, "metrics": 0,
    "attacks": 1, "defences": 1, "federated": 1,
    "registry": 2, "scenarios": 2, "experiment": 2, "contracts": 2, "claims": 2,
    "viz": 3, "widgets": 3, "checks": 3, "lessons": 3, "cli": 3, "bench": 3, "progress": 3, "completion": 3,
    "__main__": 3,
}
APART = "supplychain"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every labkit module ``path`` imports, at module level or inside functions."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("labkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("labkit"):
                continue
            found.add(target)
            for a in node.names:   # `from . import models` names a module
                if (PKG.parent / (target + "." + a.name).replace(".", "/")).with_suffix(".py").exists() or \
                        (PKG.parent / (target + "." + a.name).replace(".", "/") / "__init__.py").exists():
                    found.add(target + "." + a.name)
    return found - {mod}


def _graph() -> dict:
    files = [p for p in PKG.rglob("*.py") if p != PKG / "__init__.py"]
    return {_module_name(p): {m for m in _imports(p) if m != "labkit"} for p in files}


def _top(mod: str) -> str:
    return mod.split(".")[1] if mod.count(".") else mod


GRAPH = _graph()


def test_every_module_has_a_layer():
    unknown = sorted({_top(m) for m in GRAPH} - set(LAYERS) - {APART})
    assert not unknown, f"give these modules a layer in LAYERS (and in the docs): {unknown}"


def test_layers_import_downwards_only():
    bad = []
    for mod, deps in GRAPH.items():
        mine = _top(mod)
        for dep in deps:
            theirs = _top(dep)
            if mine == APART or theirs == APART:
                if mine == APART and theirs != APART:
                    bad.append(f"{mod} -> {dep} (supplychain is self-contained)")
                elif theirs == APART and mine != APART and LAYERS[mine] < 3:
                    bad.append(f"{mod} -> {dep} (only presentation may use supplychain)")
                continue
            if LAYERS[theirs] > LAYERS[mine]:
                bad.append(f"{mod} (layer {LAYERS[mine]}) -> {dep} (layer {LAYERS[theirs]})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_attacks_import_no_defence_registry_or_plot():
    bad = [(m, d) for m, deps in GRAPH.items() if _top(m) == "attacks" for d in deps
           if _top(d) in ("defences", "registry", "viz", "widgets", "experiment")]
    assert not bad, bad


def _cycles(graph: dict) -> list:
    """Every back edge a depth-first search meets, as the cycle it closes."""
    state, stack, found = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == "open":
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_no_import_cycle():
    """Over module- and function-level imports."""
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_search_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_graph_sees_function_level_imports():
    """The graph builder sees imports inside functions (so the cycle test could fail)."""
    deps = _imports(PKG / "experiment.py")
    assert "labkit.registry" in deps and "labkit.models" in deps
    deps = _imports(PKG / "cli" / "experiments.py")   # imports only inside functions
    assert "labkit.experiment" in deps and "labkit.registry" in deps


def test_scan_works_without_torch_and_starts_fast(tmp_path):
    """`python -m labkit scan` in an interpreter where `import torch` fails."""
    f = tmp_path / "config.yaml"
    f.write_text("model:\n  _target_: os.system\n  command: echo hi\n")
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['labkit', 'scan', %r];"
            "runpy.run_module('labkit', run_name='__main__')" % str(f))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr          # 1 = findings, not a crash
    assert "os.system" in proc.stdout
    assert time.perf_counter() - t0 < 10              # a loose sanity bound; the bench measures it


def test_import_labkit_does_not_import_torch():
    code = "import sys, labkit; labkit.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


# ---- one engine: lessons 3-5 build on labkit.experiment, and the engine keeps no cache ----

#: Calls that train a victim; only the engine's scenarios make them for a lesson.
VICTIM_TRAINING = {"train", "fine_tune", "transfer_victim", "federated_train"}
ENGINE_LESSONS = ("l03", "l04", "l05")


def _called_names(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return names


def test_lessons_3_to_5_run_through_the_engine_only():
    bad = []
    for name in ENGINE_LESSONS:
        path = PKG / "lessons" / f"{name}.py"
        for dep in _imports(path):
            if dep == "labkit.scenarios" or dep.startswith("labkit.attacks._"):
                bad.append(f"{name} imports {dep}")
        bad += [f"{name} calls {c}()" for c in sorted(_called_names(path) & VICTIM_TRAINING)]
        assert "labkit.experiment" in _imports(path), f"{name} does not use the engine"
    assert not bad, "lessons with their own engine:\n" + "\n".join(bad)


def test_the_lesson_rule_would_catch_a_lesson_that_trains_its_own_victim(tmp_path):
    planted = tmp_path / "l99.py"
    planted.write_text("from labkit.models import train\n\ndef f(d):\n    return train(d, seed=0)\n")
    assert _called_names(planted) & VICTIM_TRAINING == {"train"}


def _module_caches(path: Path) -> list:
    """Module-level caches: ``functools.lru_cache``/``cache`` decorators anywhere, and
    module-level mutable containers bound to lower-case names."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                text = ast.unparse(d)
                if "lru_cache" in text or text.endswith("cache"):
                    found.append(f"@{text} on {node.name}")
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Dict, ast.List, ast.Set)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and not t.id.isupper() and not t.id.startswith("__"):
                    found.append(f"{t.id} = {ast.unparse(node.value)[:30]}")
    return found


def test_the_engine_keeps_no_module_level_cache():
    for name in ("experiment.py", "scenarios.py", "registry.py"):
        assert not _module_caches(PKG / name), (name, _module_caches(PKG / name))


def test_the_cache_finder_finds_a_planted_memo(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("import functools\n_memo = {}\n\n@functools.lru_cache(maxsize=4)\ndef f(x):\n    return x\n")
    assert len(_module_caches(planted)) == 2


# ---- supplychain stays a product: the scanner carries no lesson glue ----------------------

#: Names of lesson glue (exercises, hints, solutions, demos, notebook tables): lesson 6's
#: live in labkit/lessons/l06.py.
LESSON_GLUE = {"hint", "solution", "HINTS", "SOLUTIONS", "tamper_demo", "exercise", "ladder",
               "describe", "scan_summary", "compare_loaders", "try_instantiate"}


def _lesson_glue(path: Path) -> list:
    """Functions, classes and module-level names in ``path`` that look like lesson glue."""
    tree = ast.parse(path.read_text())
    names = [n.name for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return sorted({n for n in names if n in LESSON_GLUE or n.startswith("check_")
                   or n.endswith("_table")})


def test_supplychain_defines_no_exercise_or_notebook_table():
    bad = {p.name: _lesson_glue(p) for p in sorted((PKG / APART).rglob("*.py")) if _lesson_glue(p)}
    assert not bad, f"lesson glue inside supplychain (move it to labkit/lessons/l06.py): {bad}"
    deps = {d for p in (PKG / APART).rglob("*.py") for d in _imports(p)}
    assert not {d for d in deps if _top(d) != APART}, "supplychain imports the lab"


def test_the_glue_finder_finds_planted_glue(tmp_path):
    planted = tmp_path / "glue.py"
    planted.write_text("HINTS = {1: 'x'}\n\ndef check_allow_list(a):\n    return a\n\n"
                       "def scan_table(arts):\n    return arts\n\ndef scan_file(p):\n    return p\n")
    assert _lesson_glue(planted) == ["HINTS", "check_allow_list", "scan_table"]
