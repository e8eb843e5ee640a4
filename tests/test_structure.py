"""The package's shape: small modules, every import on its floor or below, no import cycles, heads known by
their abilities rather than their names."""

from __future__ import annotations

import ast
import os
import re

from helpers import REPO

PACKAGE = os.path.join(REPO, "tfxc")
MAX_LINES = 400

# The house's floors, the ground first: a module imports modules of its own floor or of the floors below it,
# never one above (imports inside functions count: a lazy import hides an arrow from Python, not from the
# design). A module's floor is that of the longest name here that is it or a package holding it.
FLOORS = (
    ("the ground", ("tfxc._tf", "tfxc._version", "tfxc.errors", "tfxc.build_context")),
    ("tools of every room", ("tfxc.utils", "tfxc.registry", "tfxc.precision", "tfxc.optimizers", "tfxc.compat")),
    ("data and configs", ("tfxc.data", "tfxc.hashing", "tfxc.kernels", "tfxc.text", "tfxc.images", "tfxc.tree",
                          "tfxc.config")),
    ("the model's parts, the command lines' conventions", ("tfxc.encoders", "tfxc.heads", "tfxc.model", "tfxc.cli")),
    ("the model directory", ("tfxc.model_files", "tfxc.model_parts", "tfxc.model_dir")),
    ("what reads a trained model", ("tfxc.losses", "tfxc.eval", "tfxc.export", "tfxc.artifacts")),
    ("training", ("tfxc.training", "tfxc.ensemble", "tfxc.xr")),
    ("configs made whole", ("tfxc.recipe", "tfxc.resolve", "tfxc.convert")),
    ("a run's start, and runs made of runs", ("tfxc.launch", "tfxc.runs")),
    ("the verbs", ("tfxc.train", "tfxc.evaluate", "tfxc.predict", "tfxc.encode",
                   "tfxc.extract", "tfxc.export.__main__", "tfxc.predictors", "tfxc.api")),
    ("the package's face", ("tfxc",)),
)


def package_modules() -> dict[str, str]:
    """{dotted module name: file path} of every .py file in tfxc/."""
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


class _Imports(ast.NodeVisitor):
    """Collects the modules named by import statements that run when the module is imported."""

    def __init__(self, package: str, modules: dict, in_functions: bool):
        self.package, self.modules, self.names = package, modules, set()
        self.in_functions = in_functions

    def visit_FunctionDef(self, node):  # imports inside functions run later, on call
        if self.in_functions:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self.names.add(full if full in self.modules else base)


def imported_modules(path: str, module: str, modules: dict, in_functions: bool = True) -> set[str]:
    """The tfxc modules `module` imports (with `in_functions=False`: only those imported at import time).

    `from a.b import c` counts as importing a.b.c when that is a module, else a.b;
    importing a.b.c also runs the __init__ of every package on the way that is
    not already an ancestor of `module` (ancestors are initialised first anyway).
    """
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    visitor = _Imports(package, modules, in_functions)
    visitor.visit(ast.parse(open(path, encoding="utf-8").read(), path))
    ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    edges = set()
    for target in visitor.names:
        parts = target.split(".")
        for i in range(2, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in modules and name not in ancestors and name != module:
                edges.add(name)
        if target == "tfxc" and module != "tfxc":  # a name of the package's face (`from tfxc import x`)
            edges.add(target)
    return edges


def floor_of(module: str) -> int:
    """The index in `FLOORS` of `module`'s floor (-1: on none)."""
    best, floor = "", -1
    for index, (_, names) in enumerate(FLOORS):
        for name in names:
            # The package's face is the top floor of `tfxc` alone, not a default for modules left off the list.
            inside = module.startswith(name + ".") and name != "tfxc"
            if (module == name or inside) and len(name) > len(best):
                best, floor = name, index
    return floor


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of `graph` that goes to a higher floor, as "a (floor) -> b (floor)"."""
    return [f"{a} ({FLOORS[floor_of(a)][0]}) -> {b} ({FLOORS[floor_of(b)][0]})"
            for a in sorted(graph) for b in sorted(graph[a]) if floor_of(b) > floor_of(a)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in package_modules().items()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles():
    # Imports inside functions count too: a lazy import hides a cycle from Python, not from the design.
    modules = package_modules()
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    assert graph["tfxc.training.controller"] >= {"tfxc.training.loop", "tfxc.model_dir"}  # the parser sees imports
    assert "tfxc.model" in graph["tfxc.model_dir"]  # including those inside functions
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_import_stays_on_its_floor_or_goes_down():
    modules = package_modules()
    assert not [name for name in modules if floor_of(name) < 0], "modules on no floor: add them to FLOORS"
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    assert upward_imports(graph) == []


def test_the_floor_check_finds_an_import_up_the_house(tmp_path):
    # A data module that reaches up for a recipe rule inside a function, and one that takes the package's
    # version from its face: both arrows run up, and both are found.
    planted = tmp_path / "planted.py"
    planted.write_text("from tfxc import __version__\n\n\ndef f():\n    from tfxc.recipe import choose\n")
    modules = {**package_modules(), "tfxc.data.planted": str(planted)}
    graph = {"tfxc.data.planted": imported_modules(str(planted), "tfxc.data.planted", modules)}
    assert upward_imports(graph) == [
        "tfxc.data.planted (data and configs) -> tfxc (the package's face)",
        "tfxc.data.planted (data and configs) -> tfxc.recipe (configs made whole)"]
    assert floor_of("tfxc.heads.dense") == floor_of("tfxc.model") < floor_of("tfxc.model_dir")
    assert upward_imports({"tfxc.recipe": {"tfxc.data.sources"}, "tfxc.heads": {"tfxc.heads.base"}}) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_heads_are_not_known_by_name_outside_their_modules():
    # MACH's name may appear in its own modules (heads/mach.py, kernels/mach.py, tools/bench_mach_*.py) and
    # in the head registry; everywhere else code asks the head (abilities, num_parts), never its name.
    pattern = re.compile(r"""["']mach["']""")
    allowed = {"tfxc/heads/__init__.py"}
    offenders = []
    for root in ("tfxc", "tools"):
        for dirpath, _, files in os.walk(os.path.join(REPO, root)):
            for name in files:
                path = os.path.relpath(os.path.join(dirpath, name), REPO)
                if not name.endswith(".py") or "mach" in name or path in allowed:
                    continue
                text = open(os.path.join(REPO, path), encoding="utf-8").read()
                if pattern.search(text) or re.search(r"hasattr\([^)]*head", text):
                    offenders.append(path)
    train_sh = open(os.path.join(REPO, "train.sh"), encoding="utf-8").read()
    assert not offenders and not re.search(r"\bmach\b", train_sh), offenders


def head_class_names() -> set[str]:
    """Names of the classes in tfxc/heads/ (and its folders) that derive from `Head` (directly or through another
    head class)."""
    bases = {}
    for dirpath, _, files in os.walk(os.path.join(PACKAGE, "heads")):
        for name in sorted(f for f in files if f.endswith(".py")):
            tree = ast.parse(open(os.path.join(dirpath, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases[node.name] = {b.id for b in node.bases if isinstance(b, ast.Name)}
    heads, grown = {"Head"}, True
    while grown:
        found = {cls for cls, parents in bases.items() if parents & heads}
        grown = not found <= heads
        heads |= found
    return heads - {"Head"}


def modules_naming(names: set[str], folders) -> dict[str, list[str]]:
    """{path: the names it mentions} for the .py files of `folders` (under tfxc/) that mention any of `names`."""
    word = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    found = {}
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(PACKAGE, folder)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(dirpath, name)
                hits = sorted(set(word.findall(open(path, encoding="utf-8").read())))
                if hits:
                    found[os.path.relpath(path, REPO)] = hits
    return found


def test_the_code_that_drives_heads_does_not_name_head_classes():
    # The losses, the training loop, the evaluator and the SavedModel read a head's declared abilities
    # (`Head.logits_kind`, `supports_*`, `num_parts`); a class name there (an import, an isinstance, a
    # `type(head).__name__ == "..."`) refuses every new head that has the same ability.
    names = head_class_names()
    assert {"SoftmaxHead", "OneVsAllHead", "LinearHead", "MachHead", "LabelTreeHead", "DenseLabelHead"} <= names
    assert modules_naming(names, ["heads"]), "the search must see the heads' own modules"
    offenders = modules_naming(names, ["losses", "training", "eval", "export"])
    assert not offenders, f"head classes named outside tfxc/heads: {offenders}"


# The modules that write configs (a head's name is what a config says) besides the heads' own.
CONFIG_WRITERS = {"tfxc/recipe/rules.py", "tfxc/recipe/xrt.py"}


def registered_head_names() -> set[str]:
    """The names heads are registered under (`@HEADS.register("name", ...)`), read from tfxc/heads/."""
    names = set()
    for dirpath, _, files in os.walk(os.path.join(PACKAGE, "heads")):
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                names.update(re.findall(r"""HEADS\.register\(\s*["']([a-z_0-9]+)["']""", text))
    return names


def test_no_code_outside_the_heads_routes_by_a_heads_name():
    # A comparison with a head's name (`head.name == "xr_transformer"`, `name in ("softmax", ...)`) or a
    # table of names decides by what a head is called, not by what it can do: a new head with the same
    # ability is then refused. The code asks the head's class (`runs_in_levels`, `num_parts`, ...) instead.
    heads = registered_head_names()
    assert {"softmax", "mach", "label_tree", "xr_transformer"} <= heads, heads

    def names_a_head(node) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in heads
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(names_a_head(e) for e in node.elts)

    offenders = []
    for module, path in package_modules().items():
        relative = os.path.relpath(path, REPO)
        if module.startswith("tfxc.heads") or relative in CONFIG_WRITERS:
            continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            operands = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            # The other side is a head or its name (not, say, a schedule that is also called "linear").
            if any(names_a_head(n) for n in operands) and any(
                    re.search("name|head", ast.unparse(n), re.I) for n in operands if not names_a_head(n)):
                offenders.append(f"{relative}:{node.lineno}")
            elif (isinstance(node, ast.Assign) and names_a_head(node.value) and not isinstance(node.value, ast.Constant)
                  and any(isinstance(t, ast.Name) and "HEAD" in t.id for t in node.targets)):
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, f"code routing by a head's name: {offenders}"
