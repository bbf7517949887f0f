"""The registry of model presets and ZooModule classes (timm-style), importable without torch.

A preset is a named function that returns a config dataclass; the module class that the config builds is
the registered ``ZooModule`` subclass whose ``config_class`` is that dataclass::

    @register_model("exfm_dcn_tiny")
    def exfm_dcn_tiny() -> ExFMConfig:
        return ExFMConfig(embedding_dim=8, ...)

    zoo.create("exfm_dcn_tiny", embedding_dim=16)   # -> ExFMModule

Names listed in ``model_table.MODEL_TABLE`` are known before their module is imported; the module is imported
the first time one of its presets is used.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import sys
from typing import Any, Callable

from zoo._core.errors import ConfigError, UnknownModelError
from zoo._core.model_table import MODEL_TABLE

__all__ = ["class_path", "create", "list_models", "model_class_for_config", "preset_config", "register_model", "resolve_class"]

_PRESETS: dict[str, Callable[[], Any]] = {}
_CLASSES: dict[str, type] = {}  # "module:QualName" -> ZooModule subclass (filled by ZooModule.__init_subclass__)


def register_model(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register ``fn`` (no arguments, returns a config dataclass) as the preset ``name``."""
    if not name or not name.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"preset name {name!r} must be letters, digits, '_' and '.'")

    def decorator(fn: Callable[[], Any]) -> Callable[[], Any]:
        previous = _PRESETS.get(name)
        if previous is not None and previous.__qualname__ != fn.__qualname__:
            raise ValueError(f"preset {name!r} is registered twice ({previous.__module__} and {fn.__module__})")
        _PRESETS[name] = fn
        return fn

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted preset names (static table plus anything registered at run time), filtered by a glob."""
    names = set(MODEL_TABLE) | set(_PRESETS)
    if pattern:
        names = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
    return sorted(names)


def _preset(name: str) -> Callable[[], Any]:
    if name not in _PRESETS and name in MODEL_TABLE:
        importlib.import_module(MODEL_TABLE[name])
    try:
        return _PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        raise UnknownModelError(f"unknown model preset {name!r}{hint}") from None


def preset_config(name: str, **overrides: Any) -> Any:
    """The config of preset ``name`` with ``overrides`` applied (validated again by the dataclass)."""
    config = _preset(name)()
    if not overrides:
        return config
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"preset {name!r} ({type(config).__name__}) has no field(s) {unknown}; known: {sorted(fields)}")
    return dataclasses.replace(config, **overrides)


def create(name: str, **overrides: Any) -> Any:
    """Build the model of preset ``name`` (fresh weights), with config fields overridden by ``overrides``."""
    config = preset_config(name, **overrides)
    return model_class_for_config(config)(config)


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _register_class(cls: type) -> None:
    _CLASSES[class_path(cls)] = cls


def model_class_for_config(config: Any) -> type:
    """The registered ZooModule subclass whose ``config_class`` is ``type(config)``."""
    matches = [c for c in _CLASSES.values() if getattr(c, "config_class", None) is type(config)]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        raise UnknownModelError(f"{what} ZooModule class(es) declare config_class {type(config).__qualname__}")
    return matches[0]


def _registry_knows(module_name: str) -> bool:
    """Whether ``module_name`` lies in the package of a method the static table lists (``zoo.exfm.module`` for
    ``zoo.exfm.config``): the only modules a ``config.json`` may make the zoo import on its own."""
    for listed in set(MODEL_TABLE.values()):
        package = ".".join(listed.split(".")[:2])
        if module_name == package or module_name.startswith(package + "."):
            return True
    return False


def resolve_class(path: Any, *, trust_remote_code: bool = False) -> type:
    """The ZooModule subclass named by ``"module:QualName"`` (as written in ``config.json``).

    A class already registered (its module imported, by the zoo or by you) is returned at once. Otherwise its module
    is imported only if it belongs to a method of the static table (``model_table.MODEL_TABLE``): a ``config.json``
    cannot make the zoo run code from any other module unless ``trust_remote_code=True``.
    """
    if not isinstance(path, str):
        shown = "null" if path is None else f"{type(path).__name__} {path!r}"
        raise UnknownModelError(f"field 'zoo_class' must be a string 'package.module:ClassName', got {shown}")
    if path in _CLASSES:
        return _CLASSES[path]
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise UnknownModelError(f"zoo_class {path!r} is not of the form 'package.module:ClassName'")
    if not trust_remote_code and module_name not in sys.modules and not _registry_knows(module_name):
        raise UnknownModelError(
            f"zoo_class {path!r}: module {module_name!r} is not one the zoo's registry knows, so it was not imported; "
            "import it yourself first if you trust it, or pass trust_remote_code=True"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownModelError(f"zoo_class {path!r}: cannot import {module_name!r} ({error})") from None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if path not in _CLASSES or obj is not _CLASSES[path]:
        raise UnknownModelError(f"zoo_class {path!r} does not name a ZooModule subclass")
    return obj
