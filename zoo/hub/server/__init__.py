"""``zoo hub serve``: a local hub behind the Hugging Face Hub's HTTP API, and web pages for people.

Unmodified ``huggingface_hub`` clients (``HF_ENDPOINT=http://host:port``) download from it
(``snapshot_download``, ``hf_hub_download``, ``HfApi().model_info / list_repo_refs / list_repo_commits``,
``zoo.from_pretrained("hf://org/name")``) and, with a token from ``--token-file``, push to it
(``create_repo``, ``upload_folder``, ``create_tag``, ``module.push_to_hub("hf://org/name")``). The server is a
thin layer over :class:`~zoo.hub.local.LocalHub`: reads come from the commits' sha256 manifests and snapshot
folders, writes land through ``LocalHub.push`` / ``LocalHub.tag``; it keeps no storage of its own.

Why aiohttp: it is one well-kept package (aio-libs) that is both the HTTP server and, for the tests, a client;
it serves many slow downloads from one process without a thread each, and sends file bodies with
``loop.sendfile`` (zero copy), which is what a model hub spends its time on. Starlette would need uvicorn
besides, FastAPI both plus pydantic, and none of their extras (OpenAPI, dependency injection) is needed for a
fixed set of routes that a client already defines. aiohttp's own ``FileResponse`` is not used: it would
answer with its own ETag and serve a ``.gz`` sibling file to a client that accepts gzip; ``store.send_file``
does the ranges and ETag the Hub's client expects.

Modules: ``app`` (application, error answers, running it), ``store`` (the read side over LocalHub: manifest
entries, verified reads, ranges), ``api_read`` / ``api_write`` (the Hub's routes), ``auth`` (bearer tokens),
``pages`` + ``render`` + ``templates/`` (HTML for people, sanitised cards).

It needs the ``serve`` extra: ``pip install "paperzoo[serve]"`` (aiohttp, markdown-it-py, nh3).
"""

from __future__ import annotations

from zoo.hub.server.app import HubServer, make_app, serve

__all__ = ["HubServer", "make_app", "serve"]
