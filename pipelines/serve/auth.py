"""Bearer-token authentication for the online endpoint.

One shared secret, read from ``BATCHJOBS_TOKEN`` or a file (so it never appears on a command
line, where ``ps`` would show it). Tokens are compared with :func:`hmac.compare_digest` so the
time a wrong guess takes says nothing about how much of it was right.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pipelines.errors import BadConfigError
from pipelines.serve.request import RequestError

TOKEN_ENV = "BATCHJOBS_TOKEN"
MIN_TOKEN_CHARS = 16


def load_token(*, token_file: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """The configured token: ``token_file`` if given, else ``$BATCHJOBS_TOKEN``; None if neither."""
    environ = os.environ if env is None else env
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadConfigError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from None
        where = f"--token-file {token_file}"
    else:
        token = environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
        where = f"${TOKEN_ENV}"
    if len(token) < MIN_TOKEN_CHARS:
        raise BadConfigError(
            f"{where}: token has {len(token)} characters, need at least {MIN_TOKEN_CHARS} "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def check_bearer(header: str | None, token: str | None) -> None:
    """Raise a 401 :class:`RequestError` unless ``header`` is ``Bearer <token>``.

    ``token`` None means authentication is off (``--insecure-no-auth``).
    """
    if token is None:
        return
    if not header:
        raise RequestError(401, "missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise RequestError(401, "Authorization must be 'Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8")):
        raise RequestError(401, "invalid token")
