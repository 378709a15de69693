"""The ``hookline`` command: serve | worker | migrate | users | tokens | publish | purge |
rotate-keys | keygen. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from hookline import aio
from hookline.config import Settings
from hookline.crypto import KeyConfigError, dev_key_path, generate_key, load_box
from hookline.events import EventError, check_event
from hookline.payload import PayloadError
from hookline.store import NotFound, Store

app = typer.Typer(
    name="hookline",
    help="Durable, signed, retried webhook notifications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

T = TypeVar("T")


class CliError(Exception):
    """A failure to report as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "HOOKLINE_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        fail(f"invalid setting {name}: {err['msg']}")


def with_store(config: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` against a store for ``config`` and close it."""

    async def run() -> T:
        store = Store(config)
        try:
            return await action(store)
        finally:
            await store.close()

    return aio.run(run())


def _setup_logging(config: Settings) -> None:
    """Log to stderr as readable text, or one JSON object per line (HOOKLINE_LOG_FORMAT)."""
    from hookline.logsetup import configure

    configure(config.log_format)


def _require_keys_that_open(config: Settings) -> None:
    """Refuse to start when the stored webhook secrets do not open with the configured keys
    (typically: a development database served in production with a fresh key)."""
    failed, checked = with_store(config, lambda store: store.unopened_secrets())
    if not failed:
        return
    dev_key = dev_key_path(config)
    where = (
        f"development mode keeps its key in {dev_key.resolve()}"
        if dev_key.exists()
        else "find the key the database was used with (development mode keeps it in "
        f"{dev_key} beside the database)"
    )
    fail(
        f"{failed} of {checked} stored webhook secrets checked do not open with "
        f"HOOKLINE_SECRET_KEYS; they were encrypted with another key: {where}. Append that "
        "key to HOOKLINE_SECRET_KEYS (new key first, old key after it), then run "
        "'hookline rotate-keys' (docs/operations.md: 'From development to production')"
    )


def _require_migrated(config: Settings) -> None:
    from hookline.store.migrate import is_current

    if not is_current(config.database_url):
        fail("the database is not migrated to the current schema: run 'hookline migrate' first")


@app.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""
    from hookline.store.migrate import upgrade

    config = settings()
    upgrade(config.database_url)
    typer.echo("database is up to date", err=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; run 'hookline worker' apart.")
    ] = False,
) -> None:
    """Serve the API (and, unless --no-worker, the delivery worker in the same process)."""
    import uvicorn

    from hookline.api.app import create_app

    config = settings()
    _require_migrated(config)
    load_box(config)  # fail early, with a clear line, on missing or bad keys
    _require_keys_that_open(config)
    _setup_logging(config)
    base = f"http://{host}:{port}"
    if config.development:
        logging.getLogger("hookline").warning(
            "development mode: plain http targets and loopback addresses are allowed"
        )
        created = with_store(config, lambda store: store.bootstrap_admin())
        if created is not None:
            user, token = created
            typer.echo(
                "\nFirst start: created admin user "
                f"'{user.name}' (id {user.id}). Its API token, shown only now:\n\n"
                f"    {token}\n\n"
                f"API docs:  {base}/docs\nDashboard: {base}/dashboard\n"
            )
    from hookline.api.server import protocol_for

    uvicorn.run(
        create_app(config, run_worker=not no_worker),
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # uvicorn's lines go through _setup_logging's format too
        access_log=False,  # the API logs its own access line: method, route, status, time
        timeout_graceful_shutdown=int(config.shutdown_grace_s) + 5,
        http=protocol_for(config),  # httptools with header-size, header-count and time limits
    )


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port for Prometheus metrics at /metrics; off if unset."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics port listens on.")
    ] = "127.0.0.1",
) -> None:
    """Run a delivery worker alone (several may share one PostgreSQL database)."""
    from hookline.delivery.worker import Worker
    from hookline.metrics import Metrics
    from hookline.targets import sender_for

    config = settings()
    _require_migrated(config)
    load_box(config)  # fail early, with a clear line, on missing or bad keys
    _require_keys_that_open(config)
    _setup_logging(config)
    if config.development:
        logging.getLogger("hookline").warning(
            "development mode: plain http targets and loopback addresses are allowed"
        )

    async def run(store: Store) -> None:
        sender = sender_for(config)
        metrics = Metrics(config.events)
        runner = Worker(store, sender, config, metrics=metrics)
        stop_metrics = None
        if metrics_port is not None:
            metrics.watch_queue(store)
            try:
                stop_metrics = metrics.serve(metrics_host, metrics_port)
            except OSError as exc:
                fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        try:
            await runner.run()
        finally:
            if stop_metrics is not None:
                await stop_metrics()
            await sender.close()

    with_store(config, run)


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="A display name.")],
    admin: Annotated[bool, typer.Option("--admin", help="May publish events.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a user and its first API token (printed once)."""
    if not name.strip() or len(name) > 200:
        fail("NAME must be 1 to 200 characters")
    user, _, token = with_store(settings(), lambda store: store.create_user(name, admin))
    if as_json:
        out = {"id": user.id, "name": user.name, "admin": user.is_admin, "token": token}
        typer.echo(json.dumps(out))
    else:
        kind = "admin user" if admin else "user"
        typer.echo(f"created {kind} {user.id} ({user.name})\ntoken (shown once): {token}")


@tokens_app.command("create")
def tokens_create(
    user_id: Annotated[str, typer.Argument(help="The user's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Issue another API token for a user (printed once)."""
    token_id, token = with_store(settings(), lambda store: store.create_token(user_id))
    if as_json:
        typer.echo(json.dumps({"id": token_id, "userId": user_id, "token": token}))
    else:
        typer.echo(f"created token {token_id}\ntoken (shown once): {token}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id.")]) -> None:
    """Revoke an API token; requests with it get 401 from now on."""
    with_store(settings(), lambda store: store.revoke_token(token_id))
    typer.echo(f"revoked token {token_id}")


@app.command()
def publish(
    user_id: Annotated[str, typer.Argument(help="The user the event is for.")],
    event: Annotated[str, typer.Argument(help="The event name, e.g. resume.parsed.")],
    data: Annotated[str, typer.Option(help="The event's data, a JSON object.")] = "{}",
) -> None:
    """Publish an event for a user, as POST /api/events does."""
    config = settings()
    try:
        parsed: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:  # bad JSON, or too deep or long for json
        fail(f"--data is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        fail("--data must be a JSON object")
    check_event(config.events, event, parsed)
    result = with_store(config, lambda store: store.publish(user_id, event, parsed))
    out: dict[str, Any] = {"success": True, "deliveryIds": result.delivery_ids}
    if result.reason:
        out["reason"] = result.reason
    typer.echo(json.dumps(out))


@app.command()
def purge(
    older_than_days: Annotated[
        float | None, typer.Option(min=0, help="Default: HOOKLINE_RETENTION_DAYS (90).")
    ] = None,
) -> None:
    """Delete finished deliveries older than the retention period."""
    config = settings()
    days = config.retention_days if older_than_days is None else older_than_days
    deleted = with_store(config, lambda store: store.purge(timedelta(days=days)))
    typer.echo(f"purged {deleted} deliveries older than {days:g} days")


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every webhook secret with the newest key of HOOKLINE_SECRET_KEYS."""
    config = settings()

    async def run(store: Store) -> int:
        store.box  # noqa: B018 (fail on bad keys before touching anything)
        endpoint_ids = await store.endpoint_ids()
        with typer.progressbar(
            endpoint_ids, label="re-encrypting secrets", file=sys.stderr
        ) as progress:
            for endpoint_id in progress:
                await store.reencrypt(endpoint_id)
        return len(endpoint_ids)

    count = with_store(config, run)
    typer.echo(f"re-encrypted the secrets of {count} endpoints with the newest key")


@app.command()
def keygen() -> None:
    """Print a new key for HOOKLINE_SECRET_KEYS."""
    typer.echo(generate_key())


def main() -> None:
    """Entry point: run the CLI, turning every failure into one line and a non-zero exit."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="hookline", standalone_mode=False)
    except typer.Abort:
        typer.echo("hookline: aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.exceptions.TyperException as exc:
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help
            typer.echo(message, err=True)
            sys.exit(2)
        # Usage errors: a bad option, a missing argument. format_message() is one line.
        typer.echo(f"hookline: {message} (see 'hookline --help')", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except (CliError, NotFound, KeyConfigError, EventError, PayloadError) as exc:
        typer.echo(f"hookline: {exc}", err=True)
        sys.exit(1)
    except (OSError, SQLAlchemyError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        typer.echo(f"hookline: {first_line}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
