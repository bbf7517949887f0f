"""Save and load ZooModules as plain Hugging Face model folders, strictly and without pickle.

A folder holds ``config.json`` = ``{"zoo_class", "zoo_version", **asdict(config)}``, ``model.safetensors``
(tied tensors stored once, as ``safetensors.torch.save_model`` does) and ``README.md`` (the model card).
Loading rebuilds the class named by ``zoo_class`` from the config and copies the weights in with every key,
shape and dtype checked: anything missing, unexpected or different is a ``StrictLoadError`` naming the keys.
geoopt ``ManifoldParameter``s keep their manifold because the rebuilt module makes them again from the
config; the file records each one's manifold and loading checks the rebuilt module agrees.

A module that wraps a transformers model names the attribute in ``transformers_submodule`` (e.g. ``"lm"``). Its
folder is then also a transformers model folder: ``config.json`` holds the wrapped model's config (``model_type``,
``architectures`` and the rest) with the zoo's keys beside it (``zoo_class``, ``zoo_version`` and the zoo config
under ``zoo_config``, so no zoo field can shadow a transformers one), and the weights are stored under the wrapped
model's own names (``model.layers.0...`` rather than ``lm.model.layers.0...``), so that
``transformers.AutoModelForCausalLM.from_pretrained(folder)`` opens it unmodified. The safetensors metadata key
``zoo_transformers_submodule`` marks that layout; folders written before it (zoo fields at the top level, full
names) load as they always did.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import _remove_duplicate_names, save_file

import zoo
from zoo._core.config import config_from_dict, config_to_dict
from zoo._core.errors import ConfigError, PickleRefusedError, StrictLoadError, UnknownModelError, ZooError
from zoo._core.files import check_safetensors_header, file_mode, read_json_object
from zoo._core.registry import class_path, resolve_class

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "from_pretrained", "load_folder", "save_pretrained"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_MANIFOLDS_KEY = "zoo_manifolds"
_SUBMODULE_KEY = "zoo_transformers_submodule"  # safetensors metadata: names are relative to this attribute
ZOO_CONFIG_KEY = "zoo_config"  # config.json of a transformers-layout folder: the zoo config's fields
# Keys of a transformers config that say how or where it was written rather than what the model is.
_VOLATILE_TRANSFORMERS_KEYS = {"transformers_version", "architectures", "dtype", "torch_dtype", "_name_or_path",
                               "_commit_hash", "_attn_implementation_autoset"}


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; a saved file gets what open() would give it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _manifolds(module: torch.nn.Module) -> dict[str, str]:
    # geoopt.ManifoldParameter carries `.manifold`; no geoopt import needed to read it.
    return {
        name: type(p.manifold).__qualname__
        for name, p in module.named_parameters()
        if getattr(p, "manifold", None) is not None
    }


def _extra_files(module: Any, extra_files: Mapping[str, str | Path] | None) -> dict[str, Path]:
    """Files to ship beside the weights (plots, reports): ``module.hub_files`` updated by ``extra_files``."""
    files = {**(getattr(module, "hub_files", None) or {}), **(extra_files or {})}
    out = {}
    for name, path in files.items():
        if "/" in name or "\\" in name or name.startswith(".") or name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME):
            raise ZooError(f"extra file name {name!r} must be a plain file name other than {CONFIG_NAME}, {WEIGHTS_NAME}, {CARD_NAME}")
        if name.endswith(PICKLE_SUFFIXES):
            raise ZooError(f"extra file {name!r} looks like pickle weights; hub folders carry safetensors only")
        if not Path(path).is_file():
            raise ZooError(f"extra file {name!r}: {path} does not exist")
        out[name] = Path(path)
    return out


def save_pretrained(
    module: Any,
    save_directory: str | Path,
    *,
    metrics: Mapping[str, float] | None = None,
    training: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    extra_files: Mapping[str, str | Path] | None = None,
) -> Path:
    import shutil

    from zoo.hub.cards import render_card

    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    extras = _extra_files(module, extra_files)
    fields = config_to_dict(module.config)
    zoo_keys = {"zoo_class": class_path(type(module)), "zoo_version": zoo.__version__}
    wrapped_name = transformers_submodule(module)
    if wrapped_name is None:
        config = {**zoo_keys, **fields}
    else:
        config = {**_transformers_config(module, wrapped_name), **zoo_keys, ZOO_CONFIG_KEY: fields}

    names = _file_names(module)
    state = {names[k]: v.detach() for k, v in module.state_dict().items()}
    metadata = {"format": "pt", "zoo_class": zoo_keys["zoo_class"], _MANIFOLDS_KEY: json.dumps(_manifolds(module))}
    if wrapped_name is not None:
        metadata[_SUBMODULE_KEY] = wrapped_name
    for kept, aliases in _remove_duplicate_names(state).items():  # tied tensors are stored once
        for alias in aliases:
            metadata[alias] = kept
            del state[alias]
    state = {k: v.contiguous().cpu() for k, v in state.items()}

    _atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata=metadata))
    config_text = json.dumps(config, indent=2, sort_keys=False) + "\n"
    _atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config_text))
    for name, path in extras.items():
        if path.resolve() != (folder / name).resolve():
            _atomic_write(folder / name, lambda tmp, src=path: shutil.copyfile(src, tmp))
    card = render_card(module, config={**zoo_keys, **fields}, metrics=metrics, training=training, repo_id=repo_id, files=sorted(extras))
    _atomic_write(folder / CARD_NAME, lambda tmp: Path(tmp).write_text(card))
    return folder


def transformers_submodule(module: Any) -> str | None:
    """The attribute of ``module`` that holds a wrapped transformers model (class attribute
    ``transformers_submodule``), or ``None``; a name that holds no transformers ``PreTrainedModel`` is an error."""
    name = getattr(type(module), "transformers_submodule", None)
    if name is None:
        return None
    wrapped = getattr(module, name, None)
    if not (isinstance(wrapped, torch.nn.Module) and hasattr(wrapped, "config") and hasattr(wrapped.config, "to_dict")
            and getattr(wrapped.config, "model_type", None)):
        raise ZooError(f"{type(module).__name__}.transformers_submodule = {name!r}, but module.{name} is not a transformers model")
    return name


def _transformers_config(module: Any, name: str) -> dict[str, Any]:
    """What transformers' own ``save_pretrained`` would write as ``config.json`` for ``module.<name>``."""
    wrapped = getattr(module, name)
    config = json.loads(wrapped.config.to_json_string(use_diff=False))
    config["architectures"] = [type(wrapped).__name__]
    clashes = sorted(k for k in config if k.startswith("zoo_"))
    if clashes:
        raise ZooError(f"the transformers config of {type(module).__name__}.{name} has keys {clashes} that the zoo reserves")
    return config


def _file_names(module: Any, wrapped_name: str | None | bool = True) -> dict[str, str]:
    """``{state_dict key: name in model.safetensors}``: the wrapped transformers model's keys lose their prefix.

    ``wrapped_name=True`` reads the class attribute; ``None`` means full names (folders written before the hook).
    """
    if wrapped_name is True:
        wrapped_name = transformers_submodule(module)
    keys = list(module.state_dict())
    if not wrapped_name:
        return {k: k for k in keys}
    prefix = wrapped_name + "."
    names = {k: k[len(prefix):] if k.startswith(prefix) else k for k in keys}
    owner: dict[str, str] = {}
    clashes = [f"{owner[v]} / {k}" for k, v in names.items() if owner.setdefault(v, k) != k]
    if clashes:
        raise ZooError(f"{type(module).__name__}: weights outside .{wrapped_name} clash with its names once the prefix is dropped: {clashes}")
    return names


def load_weights(module: torch.nn.Module, path: str | Path, map_location: str = "cpu", *,
                 new_keys: Sequence[str] = (), context: str | None = None) -> list[str]:
    """Copy ``model.safetensors`` into ``module``; any key, shape, dtype or manifold mismatch is an error.

    ``new_keys`` (glob patterns) names weights the file may lack because the module adds them (a new head when
    fine-tuning): those keep their initial values and are returned; a pattern that matches no missing key is an
    error too. ``context`` replaces the file name at the start of error messages.
    """
    import fnmatch

    check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # safetensors' own errors name neither the file nor the fix
        raise ZooError(f"{path} cannot be read as safetensors: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    wrapped_name = metadata.get(_SUBMODULE_KEY)
    if wrapped_name is not None and wrapped_name != getattr(type(module), "transformers_submodule", None):
        raise StrictLoadError(f"{path} stores the weights of .{wrapped_name} under transformers names, "
                              f"but {type(module).__name__} wraps no transformers model there")
    names = _file_names(module, wrapped_name)  # state_dict key -> file name
    module_state = module.state_dict()
    expected = {names[k]: v for k, v in module_state.items()}
    aliases = {a: k for a, k in metadata.items() if a in expected and k in state}  # tied tensors
    for alias, kept in aliases.items():
        state[alias] = state[kept]
    patterns = [str(p) for p in new_keys]
    missing = sorted(set(expected) - set(state))
    fresh = [k for k in module_state if names[k] in missing and any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    missing = sorted(set(missing) - {names[k] for k in fresh})
    unexpected = sorted(set(state) - set(expected))
    bad = [
        f"{k}: file {tuple(state[k].shape)} {state[k].dtype}, model {tuple(v.shape)} {v.dtype}"
        for k, v in expected.items()
        if k in state and (state[k].shape != v.shape or state[k].dtype != v.dtype)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(k, p) for k in fresh)]
    if unmatched:
        problems.append(f"new-key pattern(s) {unmatched} match no key that is new in this model")
    if bad:
        problems.append("mismatched tensors [" + "; ".join(bad) + "]")
    if _MANIFOLDS_KEY in metadata:
        saved = json.loads(metadata[_MANIFOLDS_KEY])
        built = {k: v for k, v in _manifolds(module).items() if k not in fresh}
        if saved != built:
            problems.append(f"manifold parameters differ: file {saved}, model {built}")
    if problems:
        raise StrictLoadError(f"{context or path} does not match {type(module).__name__}: " + "; ".join(problems))
    with torch.no_grad():
        module.load_state_dict({k: state[names[k]] for k in module_state if k not in fresh}, strict=not fresh)
    return fresh


def read_model_config(folder: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(zoo_class, zoo config fields, whole config.json)`` of a folder written by ``save_pretrained``.

    A transformers-layout folder nests the zoo's fields under ``zoo_config``; older folders keep them at the top.
    """
    config_path = Path(folder) / CONFIG_NAME
    if not config_path.is_file():
        raise ZooError(f"{folder} has no {CONFIG_NAME}")
    data = read_json_object(config_path, "model config")
    if "zoo_class" not in data:
        hint = " (it is a transformers model folder: open it with transformers)" if "model_type" in data else ""
        raise ZooError(f"{config_path} has no 'zoo_class': it was not written by zoo's save_pretrained{hint}")
    if ZOO_CONFIG_KEY in data:  # a transformers-layout folder: the zoo's fields are nested
        fields = data[ZOO_CONFIG_KEY]
        if not isinstance(fields, dict):
            raise ConfigError(f"{config_path}: field {ZOO_CONFIG_KEY!r} must be an object, got {type(fields).__name__}")
    else:
        fields = {k: v for k, v in data.items() if k not in ("zoo_class", "zoo_version")}
    return data["zoo_class"], dict(fields), data


def load_folder(
    folder: str | Path, map_location: str = "cpu", expected_class: type | None = None, *, trust_remote_code: bool = False
) -> Any:
    """Rebuild the model saved in ``folder`` (see module docstring).

    ``trust_remote_code=True`` lets ``zoo_class`` name a module outside the zoo's registry (it is imported, which runs
    its code); without it such a folder is refused unless you imported that module yourself.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ZooError(f"{folder} is not a folder")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise PickleRefusedError(
                f"{folder} holds only pickle weights {pickles}; the zoo never unpickles on load. If you trust the file, "
                f"convert it once with `zoo convert {folder / pickles[0]} OUT_DIR` (a Lightning checkpoint of a ZooModule), "
                "or load it yourself and call `save_pretrained`, which writes model.safetensors"
            )
        raise ZooError(f"{folder} has no {WEIGHTS_NAME}")
    config_path = folder / CONFIG_NAME
    zoo_class, fields, data = read_model_config(folder)
    try:
        cls = resolve_class(zoo_class, trust_remote_code=trust_remote_code)
    except UnknownModelError as error:
        raise UnknownModelError(f"{config_path}: {error}") from None
    if expected_class is not None and not issubclass(cls, expected_class):
        raise ZooError(f"{folder} holds a {cls.__name__}, not a {expected_class.__name__}")
    try:
        config = config_from_dict(cls.config_class, fields)
    except ConfigError as error:
        raise ConfigError(f"{config_path}: {error}") from None
    from zoo._core.module import _WEIGHTS_FOLLOW

    token = _WEIGHTS_FOLLOW.set(True)
    try:
        module = cls(config)
    finally:
        _WEIGHTS_FOLLOW.reset(token)
    if ZOO_CONFIG_KEY in data:
        _check_transformers_config(module, data, config_path)
    load_weights(module, weights, map_location)
    return module.to(map_location).eval()


def _check_transformers_config(module: Any, data: Mapping[str, Any], config_path: Path) -> None:
    """The transformers fields of ``config.json`` must describe the model the zoo config builds, so that transformers
    and the zoo open the same architecture from one folder."""
    name = transformers_submodule(module)
    if name is None:
        raise ConfigError(f"{config_path} has the transformers layout, but {type(module).__name__} wraps no transformers model")
    built = _transformers_config(module, name)
    differ = sorted(k for k in set(built) & set(data) - _VOLATILE_TRANSFORMERS_KEYS if built[k] != data[k])
    if differ:
        k = differ[0]
        raise ConfigError(f"{config_path}: transformers field {k!r} is {data[k]!r} but the zoo config builds {built[k]!r} "
                          f"({len(differ)} field(s) differ: {differ})")


def from_pretrained(
    repo_or_path: str | Path,
    revision: str | None = None,
    *,
    hub: str | None = None,
    map_location: str = "cpu",
    expected_class: type | None = None,
    trust_remote_code: bool = False,
) -> Any:
    from zoo.hub import snapshot_path

    folder = snapshot_path(repo_or_path, revision=revision, hub=hub)
    return load_folder(folder, map_location=map_location, expected_class=expected_class, trust_remote_code=trust_remote_code)


def convert_checkpoint(checkpoint_path: str | Path, save_directory: str | Path) -> Path:
    """Turn a Lightning ``.ckpt`` of a ZooModule into a safetensors folder.

    This unpickles the checkpoint (``torch.load(weights_only=False)``): run it only on files you trust. For the same
    reason the class it names is imported wherever it lives (``trust_remote_code``).
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
        raise ZooError(f"{path} is not a checkpoint torch.load can read ({type(error).__name__}: {first})") from None
    if not isinstance(checkpoint, dict):
        raise ZooError(f"{path} holds a {type(checkpoint).__name__}, not a Lightning checkpoint (a dict with 'state_dict')")
    zoo_class = checkpoint.get("zoo_class")
    hparams = checkpoint.get("hyper_parameters", {})
    if zoo_class is None or not isinstance(hparams, dict) or "config" not in hparams or "state_dict" not in checkpoint:
        raise ZooError(f"{path} was not written by a ZooModule (no 'zoo_class' / hyper_parameters.config / state_dict)")
    try:
        cls = resolve_class(zoo_class, trust_remote_code=True)
        module = cls(config_from_dict(cls.config_class, hparams["config"]))
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except (ZooError, RuntimeError) as error:
        raise ZooError(f"{path}: {str(error).strip().splitlines()[0]}") from None
    return save_pretrained(module, save_directory, training={"converted_from": str(checkpoint_path)})
