"""Who a request acts as: a customer or staff access token, an API key, or nobody.

``Authorization: Bearer <jwt>`` signs in a customer or a staff user; ``Authorization: Bearer
sg_…`` or ``X-Api-Key: sg_…`` an app. A bad, expired, revoked or forged credential raises
InvalidToken (the endpoint answers 401) — it never silently degrades to anonymous.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import ANONYMOUS, InvalidToken, Viewer, ViewerKind, viewer_from_token
from server.config import Settings
from server.db import mark_write
from server.permissions import RoleMap
from server.services import apikeys, tokens


def credentials(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """``("jwt" | "apikey", value)`` from the request headers, or None when there is none."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise InvalidToken("expected 'Authorization: Bearer <token>'")
            return ("apikey" if apikeys.looks_like_key(token) else "jwt", token)
        if name == b"x-api-key":
            return ("apikey", value.decode("latin-1").strip())
    return None


async def authenticate(
    headers: Iterable[tuple[bytes, bytes]],
    settings: Settings,
    roles: RoleMap,
    sessions: Callable[[], AsyncSession],
) -> Viewer:
    found = credentials(headers)
    if found is None:
        return ANONYMOUS
    kind, value = found
    if kind == "jwt":
        # Signature and expiry first: a forged token costs no database work.
        viewer = viewer_from_token(settings, value)
        async with sessions() as session:
            if await tokens.is_revoked(session, viewer):
                raise InvalidToken("the token has been revoked")
        if viewer.kind is ViewerKind.STAFF:
            viewer = dataclasses.replace(viewer, permissions=roles.for_role(viewer.role))
        return viewer
    async with sessions() as session:
        key = await apikeys.authenticate(session, value)
        if key is None:
            raise InvalidToken("unknown or revoked API key")
        if apikeys.needs_touch(key):
            await session.commit()
            await mark_write(session)
            await apikeys.touch(session, key)
            await session.commit()
    return Viewer(kind=ViewerKind.APP, api_key_id=key.id, permissions=frozenset(key.scopes))
