"""paperzoo: reference implementations of research papers as Lightning modules, with a versioned hub.

``import zoo`` is light on purpose: it imports neither torch, lightning, transformers nor geoopt.
Names are listed from a static table (``zoo._core.model_table``); method code is imported only when a
model is created or loaded.

>>> import zoo
>>> zoo.list_models("*_tiny")          # doctest: +SKIP
>>> model = zoo.from_pretrained("org/name")   # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo._core.errors import ZooError
from zoo._core.registry import create, list_models, register_model

__all__ = [
    "ZooError",
    "ZooModule",
    "__version__",
    "create",
    "from_pretrained",
    "list_models",
    "register_model",
]


def from_pretrained(
    repo_or_path, revision: str | None = None, *, hub: str | None = None, map_location: str = "cpu",
    trust_remote_code: bool = False,
):
    """Load a model saved by ``save_pretrained`` or pushed to a hub; the class comes from ``config.json``.

    Args:
        repo_or_path: a local-hub repo id ``org/name``, ``hf://org/name`` for the Hugging Face Hub, or a folder given
            as a ``pathlib.Path`` or as an explicit path (``/abs``, ``./rel``, ``../rel``, ``~/...``); a bare
            ``org/name`` is always a repo id, even where a folder of that name exists.
        revision: ``"main"`` (default), a tag, or a commit id (full, or a unique prefix of 7+ hex digits).
        hub: local hub folder (default ``$ZOO_HUB`` or ``~/.cache/zoo/hub``), or ``"hf"``.
        map_location: device the weights are loaded onto.
        trust_remote_code: let ``config.json`` name a class whose module is outside the zoo's registry; that module
            is imported, which runs its code. Without it, such a class loads only if you imported its module yourself.

    Returns:
        The rebuilt ``ZooModule`` subclass, weights loaded strictly, in eval mode.
    """
    from zoo._core.serialization import from_pretrained as _from_pretrained

    return _from_pretrained(repo_or_path, revision=revision, hub=hub, map_location=map_location,
                            trust_remote_code=trust_remote_code)


def __getattr__(name: str):
    # Heavy names are imported on first use so that ``import zoo`` stays light.
    if name == "ZooModule":
        from zoo._core.module import ZooModule

        return ZooModule
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
