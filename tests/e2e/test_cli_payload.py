"""`hookline publish` refuses data it cannot send with one line and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

REQUIRED = '"resumeId": "r", "fileName": "a.pdf", "parsedAt": "t", "success": true'


def deep_data(levels: int) -> str:
    """--data whose objects nest ``levels`` deep, the data object itself being the first."""
    return "{" + REQUIRED + ', "deep": ' + '{"k": ' * (levels - 1) + "1" + "}" * levels


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hookline.db"
    assert run(path, "migrate").returncode == 0
    return path


@pytest.fixture
def user_id(db: Path) -> str:
    created = run(db, "users", "create", "Ada", "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["id"])


def test_data_at_the_limit_is_published(db: Path, user_id: str) -> None:
    published = run(db, "publish", user_id, "resume.parsed", "--data", deep_data(32))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["success"] is True


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (deep_data(33), "deeper than 32 levels"),
        (deep_data(70), "deeper than 32 levels"),
        (deep_data(700), "deeper than 32 levels"),
        (deep_data(5000), "--data"),
        ("{" + REQUIRED + ', "n": 9007199254740993}', "beyond 2**53-1"),
        ("{" + REQUIRED + ', "n": ' + "9" * 5000 + "}", "--data"),
    ],
    ids=["33-deep", "70-deep", "700-deep", "5000-deep", "2**53+1", "5000-digit integer"],
)
def test_unsendable_data_is_one_line_and_exit_1(
    db: Path, user_id: str, data: str, phrase: str
) -> None:
    published = run(db, "publish", user_id, "resume.parsed", "--data", data)
    assert published.returncode == 1, published.stderr
    assert published.stdout == ""
    assert published.stderr.startswith("hookline: ") and published.stderr.count("\n") == 1
    assert phrase in published.stderr
