"""Webhook secrets at rest: encrypted with MultiFernet under keys from HOOKLINE_SECRET_KEYS.

Keys are listed newest first. The newest encrypts; every listed key decrypts, so a key can be
rotated by prepending a new one and running ``hookline rotate-keys``. In development a key
file is created beside the database (mode 0600) when no key is configured.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hookline.config import Settings


class KeyConfigError(Exception):
    """The encryption keys are missing, malformed, or do not open a stored secret."""


class SecretBox:
    """Encrypts and decrypts webhook secrets."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise KeyConfigError("no secret encryption key configured (HOOKLINE_SECRET_KEYS)")
        try:
            self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        except (ValueError, UnicodeEncodeError) as exc:
            raise KeyConfigError(
                "HOOKLINE_SECRET_KEYS must hold Fernet keys (32 url-safe base64 bytes); "
                "make one with: hookline keygen"
            ) from exc

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise KeyConfigError("a stored secret does not open with any configured key") from exc

    def opens(self, token: str) -> bool:
        """Whether any configured key decrypts ``token``."""
        try:
            self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise KeyConfigError("a stored secret does not open with any configured key") from exc


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def dev_key_path(settings: Settings) -> Path:
    """Where development keeps its key: beside the SQLite file, else under ./var."""
    base = settings.sqlite_path.parent if settings.sqlite_path else Path("var")
    return base / "hookline.key"


def load_box(settings: Settings) -> SecretBox:
    """The SecretBox for these settings, creating the development key file if needed."""
    if settings.secret_keys:
        return SecretBox(settings.secret_keys)
    if not settings.development:
        raise KeyConfigError(
            "HOOKLINE_SECRET_KEYS is required in production; make a key with: hookline keygen"
        )
    path = dev_key_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
    return SecretBox([line.strip() for line in path.read_text().splitlines() if line.strip()])
