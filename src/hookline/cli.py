"""The ``hookline`` command: serve | worker | migrate | users | tokens | publish | purge |
rotate-keys | keygen. Every failure is one line on stderr and a non-zero exit; ``--debug``
adds the traceback. Only ``migrate`` creates a database (or its directory); every other
command refuses one that is missing or not migrated, and says to run ``hookline migrate``."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hookline import __version__, aio
from hookline.config import Settings
from hookline.crypto import KeyConfigError, dev_key_path, generate_key, load_box
from hookline.events import EventError, check_event
from hookline.payload import PayloadError
from hookline.store import NotFound, Store
from hookline.store.errors import DatabaseFault, classify
from hookline.timeutil import iso

app = typer.Typer(
    name="hookline",
    help="Durable, signed, retried webhook notifications.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
users_app = typer.Typer(help="Create and list users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

T = TypeVar("T")


#: Set by the global --debug option: failures print their traceback too.
_debug = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hookline {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On a failure, print its traceback too.")
    ] = False,
) -> None:
    global _debug
    _debug = debug


class CliError(Exception):
    """A failure to report as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a rule between settings: its message names them
            fail(f"invalid settings: {message}")
        fail(f"invalid setting HOOKLINE_{str(err['loc'][0]).upper()}: {message}")


def _sqlite_file(config: Settings) -> Path | None:
    """The SQLite database file, or None for PostgreSQL and an in-memory database."""
    path = config.sqlite_path
    return None if path is None or str(path) == ":memory:" else path


def _database_name(config: Settings) -> str:
    """The database as an operator recognises it: a file's absolute path, a URL without its
    password."""
    path = _sqlite_file(config)
    if path is not None:
        return str(path.absolute())
    return make_url(config.database_url).render_as_string(hide_password=True)


def _require_database_file(config: Settings) -> None:
    """Refuse a missing SQLite file: connecting would create an empty one (and used to create
    its directory too), which only hides a mistyped path or the wrong working directory."""
    path = _sqlite_file(config)
    if path is not None and not path.exists():
        fail(
            f"there is no database at {path.absolute()}: run 'hookline migrate' to create it, "
            "or point HOOKLINE_DATABASE_URL at the existing one"
        )


async def _schema_problem(store: Store, name: str) -> str | None:
    """Why the store's schema cannot serve this code, in a sentence; None when it can."""
    from hookline.store.migrate import is_known
    from hookline.store.readiness import current_revision, head_revision

    current, head = await current_revision(store.db), head_revision()
    if current == head:
        return None
    if current is None:
        return f"the database {name} has no hookline schema: run 'hookline migrate' first"
    if not is_known(current):
        return (
            f"the database {name} is at migration {current}, which this hookline "
            f"({__version__}, migrations up to {head}) does not know: upgrade hookline"
        )
    return f"the database {name} is at migration {current}, not {head}: run 'hookline migrate'"


def with_store(
    config: Settings, action: Callable[[Store], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Run ``action`` against a store for ``config`` and close it. Unless ``migrated`` is
    False, refuse first a missing SQLite file and a schema that is not the current one."""
    if migrated:
        _require_database_file(config)

    async def run() -> T:
        store = Store(config)
        try:
            if migrated and (problem := await _schema_problem(store, _database_name(config))):
                fail(problem)
            return await action(store)
        except (OSError, SQLAlchemyError) as exc:
            if classify(exc) is DatabaseFault.UNAVAILABLE:
                name = _database_name(config)
                raise CliError(f"cannot reach the database {name}: {_first_line(exc)}") from exc
            raise
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
    async def nothing(store: Store) -> None:
        return None

    with_store(config, nothing)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema.

    Safe to run again: it says what it did. On SQLite it creates the database file, and the
    directory it goes in, when they are missing.
    """
    from hookline.store.migrate import is_known, upgrade
    from hookline.store.readiness import current_revision, head_revision

    config = settings()
    name = _database_name(config)
    path = _sqlite_file(config)
    new_file = path is not None and not path.exists()
    if path is not None and not path.parent.exists():
        path.parent.mkdir(parents=True)
        typer.echo(f"created the directory {path.parent.absolute()} for the database")
    before = with_store(config, lambda store: current_revision(store.db), migrated=False)
    head = head_revision()
    if before == head:
        typer.echo(f"the database {name} is already at the current migration {head}")
        return
    if before is not None and not is_known(before):
        fail(
            f"the database {name} is at migration {before}, which this hookline "
            f"({__version__}, migrations up to {head}) does not know: upgrade hookline"
        )
    upgrade(config.database_url)
    if new_file:
        typer.echo(f"created the database {name} at migration {head}")
    elif before is None:
        typer.echo(f"created the schema in the database {name} at migration {head}")
    else:
        typer.echo(f"upgraded the database {name} from migration {before} to {head}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; run 'hookline worker' apart.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes sharing the port; the first also runs the delivery worker.",
        ),
    ] = 1,
    socket_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Serve the API, the dashboard and a delivery worker.

    The worker runs in the same process unless --no-worker (then run 'hookline worker').
    With --workers N, N processes answer the API and the first of them runs the worker.
    """
    import uvicorn

    from hookline.api import processes
    from hookline.api.app import create_app

    config = settings()
    child = socket_fd is not None
    if child:
        processes.die_with_parent()
    _require_migrated(config)
    load_box(config)  # fail early, with a clear line, on missing or bad keys
    _require_keys_that_open(config)
    _setup_logging(config)
    base = f"http://{host}:{port}"
    if child:
        pass  # the parent has said all of the below once
    elif config.development:
        logging.getLogger("hookline").warning(
            "development mode: plain http targets and loopback addresses are allowed"
        )
        # migrated=False: checked above (and alembic's INFO lines would show in the log now).
        created = with_store(config, lambda store: store.bootstrap_admin(), migrated=False)
        if created is not None:
            user, token = created
            typer.echo(
                "\nFirst start: created admin user "
                f"'{user.name}' (id {user.id}). Its API token, shown only now:\n\n"
                f"    {token}\n\n"
                f"API docs:  {base}/docs\nDashboard: {base}/dashboard\n"
            )
    elif not with_store(config, lambda store: store.count_users(), migrated=False):
        logging.getLogger("hookline").warning(
            "no users yet: create an admin, whose token publishes events, with "
            "'hookline users create NAME --admin'"
        )
    if workers > 1 and not child:
        try:
            sock = processes.bind(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}")
        typer.echo(f"hookline on {base} with {workers} API processes")
        debug = ["--debug"] if _debug else []
        argv = [sys.executable, "-m", "hookline", *debug, "serve", "--host", host]
        argv += ["--port", str(port)]
        if no_worker:
            argv.append("--no-worker")
        grace_s = config.shutdown_grace_s
        code = processes.supervise(sock, argv, workers, grace_s)
        if code:
            raise typer.Exit(code)
        return

    from hookline.api.server import protocol_for, serve

    sockets = None if socket_fd is None else [processes.inherited(socket_fd)]
    started = serve(
        sockets,
        uvicorn.Config(
            create_app(config, run_worker=not no_worker),
            host=host,
            port=port,
            log_level="info",
            log_config=None,  # uvicorn's lines go through _setup_logging's format too
            access_log=False,  # the API logs its own access line: method, route, status, time
            timeout_graceful_shutdown=int(config.shutdown_grace_s) + 5,
            http=protocol_for(config),  # httptools with header-size, header-count, time limits
        ),
        on_started=processes.tell_parent_ready if child else None,
    )
    if not started:  # uvicorn has logged why (the port is taken, say)
        raise typer.Exit(3)


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
    """Run a delivery worker alone.

    Several may share one PostgreSQL database.
    """
    from hookline.api.server import freeze_startup_objects
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
        freeze_startup_objects()
        try:
            await runner.run()
        finally:
            if stop_metrics is not None:
                await stop_metrics()
            await sender.close()

    # migrated=False: checked above (and alembic's INFO lines would show in the log now).
    with_store(config, run, migrated=False)


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


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """List users: id, admin or not, created, name."""
    listed = with_store(settings(), lambda store: store.list_users())
    if as_json:
        rows = [
            {"id": u.id, "name": u.name, "admin": u.is_admin, "createdAt": iso(u.created_at)}
            for u in listed
        ]
        typer.echo(json.dumps(rows))
    elif not listed:
        typer.echo(
            "no users yet: create an admin with 'hookline users create NAME --admin'", err=True
        )
    else:
        _table(
            ["ID", "ADMIN", "CREATED", "NAME"],
            [[u.id, "yes" if u.is_admin else "no", _when(u.created_at), u.name] for u in listed],
        )


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


@tokens_app.command("list")
def tokens_list(
    user_id: Annotated[
        str | None, typer.Argument(help="Only this user's tokens (default: everyone's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """List live API tokens: id, user, created, last used.

    The tokens themselves are never shown: only their hashes are stored. Last used is
    recorded at most once a minute.
    """
    listed = with_store(settings(), lambda store: store.list_tokens(user_id))
    if as_json:
        rows = [
            {
                "id": t.id,
                "userId": t.user_id,
                "userName": t.user_name,
                "createdAt": iso(t.created_at),
                "lastUsedAt": iso(t.last_used_at),
            }
            for t in listed
        ]
        typer.echo(json.dumps(rows))
    elif not listed:
        typer.echo("no live tokens", err=True)
    else:
        _table(
            ["ID", "USER", "CREATED", "LAST USED", "USER NAME"],
            [
                [t.id, t.user_id, _when(t.created_at), _when(t.last_used_at), t.user_name]
                for t in listed
            ],
        )


def _when(moment: datetime | None) -> str:
    """A time for a table: UTC to the second, or 'never'."""
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print aligned columns; the last one (a free-form name) goes unpadded."""
    rows = [list(header)] + [[*row[:-1], " ".join(row[-1].split())] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


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
    """Delete finished deliveries past the retention period."""
    config = settings()
    days = config.retention_days if older_than_days is None else older_than_days
    deleted = with_store(config, lambda store: store.purge(timedelta(days=days)))
    typer.echo(f"purged {deleted} deliveries older than {days:g} days")


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every webhook secret with the newest key.

    The newest key is the first of HOOKLINE_SECRET_KEYS.
    """
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
        _exit_with(exc, str(exc))
    except (OSError, SQLAlchemyError) as exc:
        _exit_with(exc, _database_failure(exc))
    except Exception as exc:  # a bug, or a library's error nothing above translated
        _exit_with(
            exc, f"{type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)"
        )
    if isinstance(code, int) and code:
        sys.exit(code)


def _exit_with(exc: BaseException, message: str) -> NoReturn:
    if _debug:
        traceback.print_exception(exc)
    typer.echo(f"hookline: {message}", err=True)
    sys.exit(1)


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy wraps a driver's error (``orig``) in a message of several lines; asyncpg's
    # errors, through SQLAlchemy, start with their class.
    orig = getattr(exc, "orig", None)
    text = re.sub(r"^<class '[\w.]+'>: ", "", str(orig if orig is not None else exc).strip())
    return (text.splitlines() or [type(exc).__name__])[0]


def _database_failure(exc: OSError | SQLAlchemyError) -> str:
    line = _first_line(exc)
    fault = classify(exc)
    if fault is DatabaseFault.UNAVAILABLE:
        return f"the database is unavailable: {line}"
    if fault is DatabaseFault.FULL:
        return f"the database is full: {line}"
    return line


if __name__ == "__main__":
    main()
