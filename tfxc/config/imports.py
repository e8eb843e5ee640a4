"""A config's `imports`: the modules it names, imported before it is parsed (so that they can register
heads, encoders or losses). Importing a module runs its code.

A config the user passes (`tfxc.train --config`, `tfxc.fit`) is the user's own, and its imports run as
asked. A config read back from a model directory (evaluate, export, ensemble, `tfxc.load`, a distillation
teacher, a resume's comparison) may come from someone else: its imports run only when the caller trusts
them, and never from inside that directory.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
from typing import Any

from tfxc.errors import ConfigError

TRUSTED_IMPORTS_ENV = "TFXC_TRUSTED_IMPORTS"


def trusted_imports(trust: Any) -> bool | frozenset:
    """Normalises a trust setting: True (every module), else the set of trusted module names.

    Args:
      trust: True or False, an iterable of module names, or a comma-separated string of them.
        The names in $TFXC_TRUSTED_IMPORTS (comma-separated) are trusted as well.
    """
    if trust is True:
        return True
    if isinstance(trust, str):
        trust = trust.split(",")
    names = set() if trust is False or trust is None else {str(name).strip() for name in trust}
    names |= {name.strip() for name in os.environ.get(TRUSTED_IMPORTS_ENV, "").split(",")}
    return frozenset(name for name in names if name)


def _is_trusted(module: str, trusted: bool | frozenset) -> bool:
    """Whether `module` is trusted: all are, or it or a package above it is named (a trusted package's
    submodules are its own code)."""
    if trusted is True:
        return True
    parts = module.split(".")
    return any(".".join(parts[:i]) in trusted for i in range(1, len(parts) + 1))


def _module_files(module: str) -> list[str]:
    """The files importing `module` would run: each package's `__init__` on the way and the module itself,
    found as the import system finds them, but without running any of them (which
    `importlib.util.find_spec` would do for the parent packages). Modules already imported run nothing
    and are left out; a name that cannot be found ends the list (the import then reports it)."""
    files, search_path = [], None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        loaded = sys.modules.get(name)
        if loaded is not None:
            search_path = getattr(loaded, "__path__", None)
            continue
        spec = _find_spec(name, search_path)
        if spec is None:
            break
        if spec.has_location and spec.origin:
            files.append(spec.origin)
        search_path = _search_locations(spec)
        if search_path is None:
            break
    return files


def _search_locations(spec) -> list[str] | None:
    """The directories a package's submodules are looked for in (None: not a package)."""
    locations = spec.submodule_search_locations
    if locations is None:
        return None
    # A namespace package's `_NamespacePath` recomputes itself from its parent module, which this lookup
    # has not imported: its portions as found are the ones the import would use now.
    return list(getattr(locations, "_path", locations))


def _find_spec(name: str, search_path: list[str] | None):
    """The spec of `name` (None: not found): a top-level module through `sys.meta_path`, a submodule in its
    package's `search_path` entry by entry, as `PathFinder` does (whose own lookup of a namespace package
    would need the parent imported)."""
    if search_path is None:
        return importlib.util.find_spec(name)  # no parent package, so nothing runs
    portions = []
    for entry in search_path:
        finder = pkgutil.get_importer(entry)
        spec = finder.find_spec(name) if hasattr(finder, "find_spec") else None
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions += list(spec.submodule_search_locations or ())  # a portion of a namespace package
    if not portions:
        return None
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def is_inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies under it (symbolic links resolved)."""
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _refuse_model_dir_modules(modules: list[str], model_dir: str) -> None:
    """Raises a ConfigError for a module that would be imported from a file inside `model_dir`.

    A model directory holds data, and a module shipped inside it (reached as a namespace package such as
    `runs.shared_model.plugin` from the project root, or from the current directory when that is the
    model directory) is someone else's code even when the caller trusts the names it imports.
    """
    for module in modules:
        for path in _module_files(module):
            if is_inside(path, model_dir):
                raise ConfigError(f"imports: '{module}' would be imported from {path}, inside the model directory "
                                  f"{model_dir}; tfxc never imports code from a model directory (install the "
                                  "module, or put it on PYTHONPATH outside the model directory)")


def import_modules(modules: Any, trust: Any = True, model_dir: str | None = None) -> None:
    """Imports the config's `imports` (modules that register heads, encoders or losses). This runs their code.

    Args:
      modules: the `imports` value, a list of module names.
      trust: which modules may be imported (see `trusted_imports`): True for a config of the caller's own;
        for one read from a model directory, what the caller trusts. An untrusted module that is already
        imported passes (importing it again runs nothing, e.g. a head registered by the calling program).
      model_dir: the model directory the config was read from: no module is imported from a file inside it.

    Raises:
      ConfigError: `modules` is not a list of names, an untrusted module is not imported yet, a module lies
        inside `model_dir`, or an import fails.
    """
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"imports: expected a list of module names, got {modules!r}")
    trusted = trusted_imports(trust)
    refused = [m for m in modules if not _is_trusted(m, trusted) and m not in sys.modules]
    if refused:
        raise ConfigError(f"imports modules ({', '.join(refused)}), and importing them runs their code; "
                          f"pass --trust-imports if you trust the model directory{_named(model_dir)} (in Python: "
                          f"trust_imports=True; or name the modules in ${TRUSTED_IMPORTS_ENV})")
    if model_dir is not None:
        _refuse_model_dir_modules(modules, model_dir)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # any failure of user code at import time is a config problem here
            raise ConfigError(f"imports: cannot import '{module}' ({type(e).__name__}: {e})") from None


def _named(model_dir: str | None) -> str:
    return f" {model_dir}" if model_dir else ""
