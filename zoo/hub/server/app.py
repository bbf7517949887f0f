"""The application: routes, error answers, and running it (``serve`` for the CLI, ``HubServer`` in a thread)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from pathlib import Path

from aiohttp import web

from zoo._core.errors import ZooError
from zoo.hub.local import LocalHub
from zoo.hub.server import api_read, api_write, pages
from zoo.hub.server.auth import TokenCheck, load_tokens
from zoo.hub.server.store import STORE, HttpError, Store

__all__ = ["HubServer", "LOOPBACK", "make_app", "serve"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")
log = logging.getLogger("zoo.hub.server")


def _is_api(request: web.Request) -> bool:
    parts = request.path.split("/")
    return request.path.startswith("/api/") or (len(parts) > 3 and parts[3] == "resolve")


def _answer(request: web.Request, status: int, message: str, code: str | None = None,
            headers: dict[str, str] | None = None, extra: dict | None = None) -> web.StreamResponse:
    if not _is_api(request):
        response = pages.error_page(request, status, message)
        response.headers.update(headers or {})
        return response
    headers = {**(headers or {}), "X-Error-Message": message.replace("\n", " ")[:1000]}
    if code:
        headers["X-Error-Code"] = code
    return web.json_response({"error": message, **(extra or {})}, status=status, headers=headers)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except HttpError as error:
        return _answer(request, error.status, error.message, error.code, error.headers, error.extra)
    except ZooError as error:
        mapped = HttpError.from_zoo(error)
        return _answer(request, mapped.status, mapped.message, mapped.code)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _answer(request, error.status, error.reason)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as error:  # a bug: say so in the answer and the log, keep serving
        log.exception("error answering %s %s", request.method, request.path)
        return _answer(request, 500, f"internal error of zoo hub serve: {type(error).__name__}: {error}")


def make_app(hub: str | Path | LocalHub | None = None, *, tokens: tuple[str, ...] | None = None,
             max_commit_bytes: int = 2 << 30) -> web.Application:
    """The aiohttp application over ``hub`` (a folder or a ``LocalHub``); writes need one of ``tokens``."""
    local = hub if isinstance(hub, LocalHub) else LocalHub(hub)
    app = web.Application(middlewares=[_errors], client_max_size=64 << 20)
    app[STORE] = Store(local)
    # Order matters: the API's fixed prefixes come before the pages' /{org}/{name}/... patterns.
    api_write.add_routes(app, TokenCheck(tokens), max_commit_bytes)
    api_read.add_routes(app)
    pages.add_routes(app)
    return app


class HubServer:
    """A server in a background thread, for tests and embedding: ``with HubServer(root) as s: s.endpoint``.

    ``stop()`` closes the listening socket and every open connection, so the endpoint is really gone.
    """

    def __init__(self, hub: str | Path | LocalHub | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: tuple[str, ...] | None = None, max_commit_bytes: int = 2 << 30) -> None:
        self.app = make_app(hub, tokens=tokens, max_commit_bytes=max_commit_bytes)
        self.host, self.port = host, port
        self.endpoint: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port)
                loop.run_until_complete(site.start())
                host, port = self._runner.addresses[0][:2]
                self.endpoint = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
            except BaseException as error:  # reported to start()
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="zoo-hub-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(hub: str | Path | None, *, host: str = "127.0.0.1", port: int = 8000, token_file: str | None = None,
          allow_remote: bool = False, max_commit_mb: int = 2048) -> None:
    """Run the server in the foreground until interrupted (``zoo hub serve``)."""
    if host not in LOOPBACK and not allow_remote:
        raise ZooError(f"--host {host} would serve the hub beyond this machine; add --allow-remote to mean it")
    tokens = load_tokens(token_file) if token_file else None
    local = LocalHub(hub)
    if not local.root.is_dir():
        raise ZooError(f"hub folder {local.root} does not exist")
    if host not in LOOPBACK:
        print(f"zoo hub serve: warning: listening on {host}: anyone who reaches this address can read every repo"
              + (" and anyone with a token can push; there is no TLS, so put a TLS proxy in front"
                 if tokens else ""), file=sys.stderr)
    app = make_app(local, tokens=tokens, max_commit_bytes=max_commit_mb << 20)

    async def main() -> None:
        runner = web.AppRunner(app, shutdown_timeout=5.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        for address in runner.addresses:
            bound_host, bound_port = address[:2]
            url = f"http://{bound_host}:{bound_port}" if ":" not in bound_host else f"http://[{bound_host}]:{bound_port}"
            mode = "read-write (token required to write)" if tokens else "read-only (no --token-file)"
            print(f"zoo hub serve: {local.root} at {url}, {mode}; HF_ENDPOINT={url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
