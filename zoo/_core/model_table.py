"""The static table of registered model presets: name -> module that registers it.

``zoo.list_models()`` and ``zoo --help`` read this table without importing method code. A test imports
every module listed here and checks that the table and the ``@register_model`` decorators agree, so a preset
added in code but not here (or the reverse) fails CI.
"""

from __future__ import annotations

# preset name -> importable module whose import runs its @register_model decorators.
# Filled in as methods land.
MODEL_TABLE: dict[str, str] = {
    "adaskip_plan_tiny": "zoo.adaskip.module",
}
