"""The import contract: bigbigan's layers only import downwards (README "Layout").

Every module of src/bigbigan is parsed (not imported); its imports of bigbigan modules, relative or absolute,
at any depth, are resolved to the component they land in (``bigbigan.train.loop`` -> ``train``) and checked
against LAYERS, bottom first. A component may import itself and any component of a lower layer; the components
of one layer are independent of each other (``train`` and ``evaluation`` never import one another). A module
that is in no layer fails too, so a new module has to be placed. Imports of bigbigan inside functions are
refused: they are how a cycle hides.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = [
    {"files", "dist", "runtime", "rundir"},  # no bigbigan imports: atomic writes + JSONL, torch.distributed,
    #                                          allocator, the run directory's lock and checks
    {"nets", "data"},  # G, D, E, P_z and the builders; image sources, transforms, streams
    {"objective"},  # losses as pure functions of D's scores
    {"config"},  # the typed configuration (validates against nets' and objective's choices)
    {"presets"},  # scales and variants
    {"checkpoint", "standing"},  # checkpoint files and reading exports; standing BN statistics: train and evaluation
    {"train", "evaluation"},  # the trainer; evaluation protocols: independent of each other
    {"workflows", "export"},  # a training run with the evaluation and picture hooks; exported models
    {"model"},  # bigbigan.load: a trained model as a tool
    {"ablate", "commands"},  # Table 1 (variants x seeds); export / encode / sample / reconstruct / neighbours
    {"cli"},  # argv -> configuration -> commands
    {"__main__"},
]
RANK = {c: i for i, layer in enumerate(LAYERS) for c in layer}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def bigbigan_imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int, bool]]:
    """(imported bigbigan module, line, inside a function) for every import of ``source``, the text of
    ``module`` (dotted name); relative imports are resolved against its package."""
    package = module.split(".") if is_package or module == "bigbigan" else module.split(".")[:-1]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue  # annotations only: never imported at run time
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names if a.name.split(".")[0] == "bigbigan")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "bigbigan":
                    continue
                if target == "bigbigan":  # ``from . import dist`` (a module) or ``__version__`` (the root's)
                    found.extend((f"{target}.{a.name}" if _is_top_module(a.name) else target, child.lineno,
                                  in_function) for a in child.names)
                elif not child.module:  # ``from . import knn`` in a subpackage: the names are its modules
                    found.extend((f"{target}.{a.name}", child.lineno, in_function) for a in child.names)
                else:
                    found.append((target, child.lineno, in_function))
            visit(child, local)

    visit(ast.parse(source), False)
    return found


def component(module: str) -> str:
    """``bigbigan.train.loop`` -> ``train``; the package root ``bigbigan`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_top_module(name: str) -> bool:
    return (SRC / "bigbigan" / f"{name}.py").is_file() or (SRC / "bigbigan" / name).is_dir()


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The contract's complaints about one module's source, one line each."""
    own = component(module)
    out = []
    for target, line, in_function in bigbigan_imports(source, module, is_package):
        other = component(target)
        if own == "__init__":
            # The package root imports nothing at import time (so ``import bigbigan.x`` stays light and the root
            # sits below everything); its ``bigbigan.load`` imports the API when called: a documented lazy import.
            if not in_function:
                out.append(f"{module}:{line} imports {target} at import time (the root must import nothing)")
            continue
        if in_function:
            out.append(f"{module}:{line} imports {target} inside a function (move it to the top)")
        if other in (own, "__init__"):  # itself, or the root's attributes (``__version__``)
            continue
        if own not in RANK or other not in RANK:
            out.append(f"{module}:{line} imports {target}: {own if own not in RANK else other} is in no layer")
        elif RANK[other] >= RANK[own]:
            kind = "a peer of the same layer" if RANK[other] == RANK[own] else "a higher layer"
            out.append(f"{module}:{line} imports {target}: {other} is {kind} than {own}")
    return out


def test_the_package_obeys_the_layers():
    paths = sorted((SRC / "bigbigan").rglob("*.py"))
    assert len(paths) > 40
    problems = [v for p in paths for v in violations(p.read_text(), module_name(p), p.name == "__init__.py")]
    assert problems == []


@pytest.mark.parametrize(
    "module, source, complaint",
    [
        ("bigbigan.train.loop", "from ..evaluation.pictures import save_grid\n", "evaluation is a peer"),
        ("bigbigan.evaluation.features", "from bigbigan.train.loop import Trainer\n", "train is a peer"),
        ("bigbigan.nets.layers", "from ..config import Config\n", "config is a higher layer"),
        ("bigbigan.files", "import bigbigan.checkpoint\n", "checkpoint is a higher layer"),
        ("bigbigan.objective", "from . import train\n", "train is a higher layer"),
        ("bigbigan.checkpoint", "def f():\n    from .files import atomic_save\n", "inside a function"),
        ("bigbigan.newthing", "from .files import atomic_save\n", "newthing is in no layer"),
        ("bigbigan", "from .model import load\n", "at import time"),
        ("bigbigan.standing", "from .train.stream import build_stream\n", "train is a higher layer"),
    ],
)
def test_the_checker_catches_an_upward_import(module, source, complaint):
    found = violations(source, module)
    assert len(found) == 1 and complaint in found[0], found


def test_the_checker_accepts_downward_and_internal_imports():
    src = "from .. import dist as bdist\nfrom ..nets import build_models\nfrom .ema import EMA\nimport torch\n"
    assert violations(src, "bigbigan.train.loop") == []
    assert violations("from .discriminator import Scores\n", "bigbigan.nets", is_package=True) == []
    assert bigbigan_imports("from . import dist\n", "bigbigan.cli") == [("bigbigan.dist", 1, False)]
    assert violations("from . import __version__\n", "bigbigan.export") == []  # the root's attribute
    assert violations("def load():\n    from .model import load\n", "bigbigan", is_package=True) == []


# The only modules that read the environment, and why: torchrun's variables, the allocator switch of the
# allocator benchmark, the Inception cache location, and $CXX, the C++ compiler torch.compile's CPU backend uses
# (checked before a compiled Inception mode). Test-only behaviour never comes from the environment.
ENVIRONMENT_READERS = {"bigbigan.dist", "bigbigan.runtime", "bigbigan.evaluation.generative",
                       "bigbigan.evaluation.inception"}


def test_only_the_declared_modules_read_the_environment():
    readers = set()
    for p in (SRC / "bigbigan").rglob("*.py"):
        tree = ast.parse(p.read_text())
        if any(isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv") for n in ast.walk(tree)):
            readers.add(module_name(p))
    assert readers == ENVIRONMENT_READERS
