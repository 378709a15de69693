"""A first day with the hookline command, run as a user runs it (a subprocess each time): it
explains itself. Every failure is one line and a non-zero exit, without a traceback unless
--debug; nothing but 'hookline migrate' creates a database or a directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import hookline
from hookline.store.migrate import upgrade
from hookline.store.readiness import head_revision
from tests.support import TEST_KEY, make_settings, running_api

HEAD = head_revision()


def hookline_cli(
    *args: str, url: str | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``hookline ARGS`` in ``cwd``, on ``url`` (None: the default, ./var/hookline.db)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    base.update(HOOKLINE_SECRET_KEYS=TEST_KEY, COLUMNS="80")
    if url is not None:
        base["HOOKLINE_DATABASE_URL"] = url
    base.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from hookline.cli import main; main()", *args],
        env=base,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_failure(
    result: subprocess.CompletedProcess[str], *phrases: str, command: tuple[str, ...] = ()
) -> None:
    context = f"{' '.join(command)}: {result.stderr}"
    assert result.returncode != 0, context
    assert "Traceback" not in result.stderr, context
    assert result.stderr.startswith("hookline: ") and result.stderr.count("\n") == 1, context
    for phrase in phrases:
        assert phrase in result.stderr, context


# Every command that needs a database, with arguments that would otherwise be fine.
DATABASE_COMMANDS = [
    ("users", "create", "Bob"),
    ("users", "list"),
    ("tokens", "create", "c0000000000000000000000000"),
    ("tokens", "list"),
    ("tokens", "revoke", "c0000000000000000000000000"),
    ("purge",),
    ("rotate-keys",),
    ("publish", "c0000000000000000000000000", "operation.cancelled", "--data",
     '{"operationType": "tailoring", "operationId": "o1", "cancelledAt": "t"}'),
    ("worker",),
    ("serve",),
]  # fmt: skip


def each_command(
    commands: list[tuple[str, ...]], **kwargs: Any
) -> list[tuple[tuple[str, ...], subprocess.CompletedProcess[str]]]:
    """Run each command (a few at a time: each is a process of its own)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda args: hookline_cli(*args, **kwargs), commands)
        return list(zip(commands, results, strict=True))


def test_no_database_here_creates_nothing(tmp_path: Path) -> None:
    """In a directory without ./var/hookline.db: say so and where, and leave no trace."""
    for args, result in each_command(DATABASE_COMMANDS, cwd=tmp_path):
        where = f"there is no database at {tmp_path / 'var' / 'hookline.db'}"
        one_line_failure(result, where, "hookline migrate", command=args)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_created_only_by_migrate(tmp_path: Path) -> None:
    database = tmp_path / "nonexistent" / "dir" / "x.db"
    url = f"sqlite+aiosqlite:///{database}"
    for args, result in each_command(DATABASE_COMMANDS[:4], url=url):
        one_line_failure(result, f"there is no database at {database}", command=args)
    assert list(tmp_path.iterdir()) == []

    migrated = hookline_cli("migrate", url=url)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.splitlines() == [
        f"created the directory {database.parent} for the database",
        f"created the database {database} at migration {HEAD}",
    ]


def test_unmigrated_database_says_run_migrate(unmigrated_database_url: str) -> None:
    url = unmigrated_database_url
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite+aiosqlite:///")).touch()  # an empty file: no schema
    for args, result in each_command(DATABASE_COMMANDS, url=url):
        one_line_failure(result, "has no hookline schema: run 'hookline migrate'", command=args)


def test_an_older_schema_says_run_migrate(unmigrated_database_url: str) -> None:
    upgrade(unmigrated_database_url, "0003")
    commands = [("users", "list"), ("tokens", "list"), ("purge",), ("serve",)]
    for args, result in each_command(commands, url=unmigrated_database_url):
        phrase = f"is at migration 0003, not {HEAD}: run 'hookline migrate'"
        one_line_failure(result, phrase, command=args)


def test_migrate_says_what_it_did(unmigrated_database_url: str) -> None:
    url = unmigrated_database_url
    if url.startswith("sqlite"):  # no file yet
        name = url.removeprefix("sqlite+aiosqlite:///")
        created = f"created the database {name} at migration {HEAD}"
    else:  # an empty database
        name = make_url(url).render_as_string(hide_password=True)
        created = f"created the schema in the database {name} at migration {HEAD}"

    first = hookline_cli("migrate", url=url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [created]

    again = hookline_cli("migrate", url=url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"the database {name} is already at the current migration {HEAD}"
    ]


def test_migrate_fills_an_empty_file_and_upgrades_an_old_schema(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    filled = hookline_cli("migrate", url=f"sqlite:///{empty}")
    assert filled.stdout.splitlines() == [
        f"created the schema in the database {empty} at migration {HEAD}"
    ]

    old = tmp_path / "old.db"
    upgrade(f"sqlite+aiosqlite:///{old}", "0003")
    upgraded = hookline_cli("migrate", url=f"sqlite:///{old}")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.splitlines() == [
        f"upgraded the database {old} from migration 0003 to {HEAD}"
    ]


def test_the_url_forms_people_paste_work(database_url: str) -> None:
    """postgres://, postgresql:// and sqlite:/// run on the async drivers."""
    if database_url.startswith("sqlite+aiosqlite:///"):
        pasted = [database_url.replace("sqlite+aiosqlite:///", "sqlite:///", 1)]
    else:
        rest = database_url.split("://", 1)[1]
        pasted = [f"postgres://{rest}", f"postgresql://{rest}"]
    for url in pasted:
        created = hookline_cli("users", "create", "Ada", "--json", url=url)
        assert created.returncode == 0, created.stderr
        listed = hookline_cli("users", "list", "--json", url=url)
        assert listed.returncode == 0, listed.stderr
        assert "Ada" in {user["name"] for user in json.loads(listed.stdout)}


@pytest.mark.parametrize(
    ("url", "phrases"),
    [
        ("mysql://root@127.0.0.1/hookline", ["cannot use 'mysql://'"]),
        ("postgresql+psycopg://u@127.0.0.1/x", ["cannot use 'postgresql+psycopg://'"]),
        ("sqlite://x.db", ["three slashes"]),
        ("hookline.db", ["without a scheme"]),
    ],
)
def test_other_database_urls_are_refused_naming_the_forms(
    tmp_path: Path, url: str, phrases: list[str]
) -> None:
    result = hookline_cli("users", "list", url=url, cwd=tmp_path)
    one_line_failure(
        result,
        "invalid setting HOOKLINE_DATABASE_URL",
        *phrases,
        "postgresql://",
        "postgres://",
        "sqlite:///PATH",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
def test_an_unreachable_postgresql_is_one_line(scheme: str) -> None:
    result = hookline_cli("users", "list", url=f"{scheme}://u:sekret@127.0.0.1:1/x")
    one_line_failure(result, "cannot reach the database postgresql+asyncpg://u:***@127.0.0.1:1/x")
    assert "sekret" not in result.stderr


def test_lists_show_users_and_tokens_with_last_use(database_url: str) -> None:
    ada = json.loads(
        hookline_cli("users", "create", "Ada", "--admin", "--json", url=database_url).stdout
    )
    bob = json.loads(
        hookline_cli("users", "create", "Bob Smith", "--json", url=database_url).stdout
    )
    extra = json.loads(
        hookline_cli("tokens", "create", bob["id"], "--json", url=database_url).stdout
    )

    users = hookline_cli("users", "list", "--json", url=database_url)
    assert users.returncode == 0, users.stderr
    listed = json.loads(users.stdout)
    assert [(u["id"], u["name"], u["admin"]) for u in listed] == [
        (ada["id"], "Ada", True),
        (bob["id"], "Bob Smith", False),
    ]
    assert all(_recent(u["createdAt"]) for u in listed)
    text = hookline_cli("users", "list", url=database_url).stdout.splitlines()
    assert text[0].split() == ["ID", "ADMIN", "CREATED", "NAME"]
    assert text[1].split()[:2] == [ada["id"], "yes"] and text[1].endswith("  Ada")
    assert text[2].split()[:2] == [bob["id"], "no"] and text[2].endswith("  Bob Smith")

    # Ada's token authenticates one API request.
    asyncio.run(_call_api(database_url, ada["token"]))

    tokens = hookline_cli("tokens", "list", "--json", url=database_url)
    assert tokens.returncode == 0, tokens.stderr
    rows = json.loads(tokens.stdout)
    assert [(t["userId"], t["userName"]) for t in rows] == [
        (ada["id"], "Ada"),
        (bob["id"], "Bob Smith"),
        (bob["id"], "Bob Smith"),
    ]
    assert set(rows[0]) == {"id", "userId", "userName", "createdAt", "lastUsedAt"}
    assert rows[2]["id"] == extra["id"]
    assert _recent(rows[0]["lastUsedAt"]) and rows[1]["lastUsedAt"] is None
    assert rows[2]["lastUsedAt"] is None

    text = hookline_cli("tokens", "list", url=database_url).stdout.splitlines()
    assert text[0].split() == ["ID", "USER", "CREATED", "LAST", "USED", "USER", "NAME"]
    assert text[1].split()[:2] == [rows[0]["id"], ada["id"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text[1].split()[3])
    assert text[2].split()[3] == "never"

    only_bob = json.loads(
        hookline_cli("tokens", "list", bob["id"], "--json", url=database_url).stdout
    )
    assert [t["id"] for t in only_bob] == [rows[1]["id"], extra["id"]]
    one_line_failure(
        hookline_cli("tokens", "list", "nobody", url=database_url), "no user with id nobody"
    )

    everything = users.stdout + tokens.stdout + "\n".join(text)
    for secret in (ada["token"], bob["token"], extra["token"]):
        assert secret not in everything


def test_empty_lists(database_url: str) -> None:
    for args in (("users", "list"), ("tokens", "list")):
        as_json = hookline_cli(*args, "--json", url=database_url)
        assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
        text = hookline_cli(*args, url=database_url)
        assert text.returncode == 0 and text.stdout == "" and text.stderr.count("\n") == 1
    assert (
        "hookline users create NAME --admin"
        in hookline_cli("users", "list", url=database_url).stderr
    )


def test_version(tmp_path: Path) -> None:
    result = hookline_cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == f"hookline {hookline.__version__}\n"
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    plain = hookline_cli("users", "list", cwd=tmp_path)
    one_line_failure(plain, "there is no database")
    debug = hookline_cli("--debug", "users", "list", cwd=tmp_path)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()


@pytest.mark.parametrize(
    "group", [(), ("users",), ("tokens",)], ids=["hookline", "users", "tokens"]
)
def test_help_lines_are_whole_sentences(group: tuple[str, ...]) -> None:
    result = hookline_cli(*group, "--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert len(commands) >= 2
    for line in commands:
        _, description = line.split(maxsplit=1)
        assert description.endswith(".") and not description.endswith("..."), line
    assert ("list" if group else "--version") in result.stdout


@pytest.mark.slow
def test_serve_in_production_hints_at_the_first_admin(database_url: str) -> None:
    log = _serve_log(database_url)
    (hint,) = [line for line in log.splitlines() if "no users yet" in line]
    assert hint.endswith(
        "no users yet: create an admin, whose token publishes events, with "
        "'hookline users create NAME --admin'"
    )
    hookline_cli("users", "create", "Publisher", "--admin", url=database_url)
    assert "no users yet" not in _serve_log(database_url)


def _serve_log(url: str) -> str:
    """The log of ``hookline serve`` in production mode until it listens; then stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(HOOKLINE_SECRET_KEYS=TEST_KEY, HOOKLINE_DATABASE_URL=url)
    command = [sys.executable, "-c", "from hookline.cli import main; main()", "serve"]
    lines = []
    with subprocess.Popen(
        [*command, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "Application startup complete" in line:
                    break
            else:
                raise AssertionError("serve exited: " + "".join(lines))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    return "".join(lines)


async def _call_api(database_url: str, token: str) -> None:
    async with running_api(make_settings(database_url), run_worker=False) as api:
        response = await api.client.get(
            "/api/webhooks/config", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code != 401, response.text


def _recent(stamp: str | None) -> bool:
    assert stamp is not None and stamp.endswith("Z")
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=5)
