"""Who is asking: a `Session` from a JWT, the admin secret, or nobody (anonymous).

Tokens are HS256 JWTs verified with PyJWT (SPEC section 7): `sub` is the
user id, `role` the role (default `user`). The same rules read HTTP headers,
a graphql-ws `connection_init` payload and the raw protocol's token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from graph.errors import InvalidJWT

ADMIN = "admin"
ANONYMOUS = "anonymous"
DEFAULT_ROLE = "user"
ADMIN_SECRET_HEADER = "x-admin-secret"
FAR_FUTURE = 1e18  # seconds since the epoch, past any real token's `exp`
TIME_CLAIMS = ("exp", "nbf", "iat")  # NumericDate claims (RFC 7519): JSON numbers


@dataclass(frozen=True)
class Session:
    role: str
    user_id: str | None = None
    expires_at: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    is_admin: bool = False
    """Authenticated by the admin secret, the one way past the rules (SPEC section 7).

    Never derived from the role's name: a token whose `role` is `admin` is an
    ordinary role that the permissions file governs.
    """

    @property
    def rules_role(self) -> str | None:
        """The role whose rules apply; None for the admin secret, which no rule limits."""
        return None if self.is_admin else self.role

    @property
    def variables(self) -> dict[str, str | None]:
        """Session variables as permission rules name them (X-User-Id, X-Role)."""
        return {"X-User-Id": self.user_id, "X-Role": self.role}

    def seconds_left(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - time.time()


ANONYMOUS_SESSION = Session(ANONYMOUS)
ADMIN_SESSION = Session(ADMIN, is_admin=True)


class Authenticator:
    def __init__(self, jwt_secret: str | None, admin_secret: str | None) -> None:
        self.jwt_secret = jwt_secret
        self.admin_secret = admin_secret

    def from_token(self, token: str | None) -> Session:
        if not token:
            return ANONYMOUS_SESSION
        if not self.jwt_secret:
            raise InvalidJWT("a token was sent but the server has no --jwt-secret to verify it")
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                options={"require": [], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidJWT("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise InvalidJWT(f"invalid token: {error}") from None
        role = claims.get("role", DEFAULT_ROLE)
        sub = claims.get("sub")
        if not isinstance(role, str) or not role:
            raise InvalidJWT("invalid token: the role claim must be a non-empty string")
        if sub is not None and not isinstance(sub, str | int):
            raise InvalidJWT("invalid token: the sub claim must be a string")
        for name in TIME_CLAIMS:
            # PyJWT also takes "99999999999" (a string), which would then never expire here.
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidJWT(f"invalid token: the {name} claim must be a number")
        expires = claims.get("exp")
        # An `exp` too large for a float (10**400) is as good as never.
        if not isinstance(expires, int | float) or expires >= FAR_FUTURE:
            expires = None
        return Session(
            role=role,
            user_id=None if sub is None else str(sub),
            expires_at=None if expires is None else float(expires),
            claims=claims,
        )

    def is_admin_secret(self, secret: str | None) -> bool:
        """Whether `secret` was sent (False: absent); InvalidJWT when it is not the admin secret."""
        return self._admin(secret)

    def _admin(self, secret: str | None) -> bool:
        if secret is None:
            return False
        if not self.admin_secret or not hmac.compare_digest(secret.encode(), self.admin_secret.encode()):
            raise InvalidJWT("invalid X-Admin-Secret")
        return True

    def from_headers(self, headers: Mapping[str, str]) -> Session:
        """HTTP: `X-Admin-Secret`, else `Authorization: Bearer <token>`, else anonymous."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if self._admin(lowered.get(ADMIN_SECRET_HEADER)):
            return ADMIN_SESSION
        return self.from_token(bearer(lowered.get("authorization")))

    def from_init_payload(self, payload: Mapping[str, Any] | None) -> Session:
        """graphql-ws: `{"headers": {...}}` or the same keys at the top level of the payload."""
        if not payload:
            return ANONYMOUS_SESSION
        headers = payload.get("headers")
        source = headers if isinstance(headers, Mapping) else payload
        return self.from_headers({str(k): str(v) for k, v in source.items() if isinstance(v, str)})


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidJWT("the Authorization header must be 'Bearer <token>'")
    return token.strip()
