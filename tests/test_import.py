"""`import zoo`, `zoo --help` and `zoo list` stay light: no torch, lightning, transformers or geoopt."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import zoo
from zoo._core import registry
from zoo._core.model_table import MODEL_TABLE

from tests.conftest import subprocess_env

HEAVY = ["torch", "lightning", "transformers", "geoopt", "huggingface_hub", "datasets"]


def _modules_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_zoo_is_light():
    assert _modules_after("import zoo; zoo.list_models(); zoo.__version__") == []


def test_cli_help_and_list_are_light():
    code = (
        "import contextlib, io\nfrom zoo.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "    main(['list'])\n"
        "assert 'zoo run' in out.getvalue() and 'lightning run' in out.getvalue(), out.getvalue()"
    )
    assert _modules_after(code) == []


def _import_all() -> None:
    for info in pkgutil.walk_packages(zoo.__path__, "zoo."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def test_static_table_matches_registrations():
    """Every preset registered by zoo's own modules is in MODEL_TABLE, under the module that registers it."""
    _import_all()
    for name, module in MODEL_TABLE.items():
        assert name in registry._PRESETS, f"MODEL_TABLE lists {name!r} but {module} does not register it"
        assert registry._PRESETS[name].__module__.startswith(module), (name, module)
    ours = {n for n, fn in registry._PRESETS.items() if fn.__module__.startswith("zoo.")}
    assert ours <= set(MODEL_TABLE), f"presets missing from zoo/_core/model_table.py: {sorted(ours - set(MODEL_TABLE))}"


def test_every_model_class_has_a_tiny_preset():
    _import_all()
    import tests.smoke.model  # noqa: F401  (the test model follows the rule too)

    classes = {path: cls for path, cls in registry._CLASSES.items() if getattr(cls, "config_class", None) is not None}
    tiny = {registry.model_class_for_config(registry.preset_config(n)) for n in registry.list_models("*_tiny")}
    missing = [path for path, cls in classes.items() if cls not in tiny and not path.startswith("tests.hub")]
    assert not missing, f"model classes without a *_tiny preset: {missing}"
