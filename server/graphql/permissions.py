"""Permission classes for fields that only some viewers may resolve."""

from __future__ import annotations

import functools
from typing import Any

from strawberry.permission import BasePermission

from server.graphql.context import Info


class IsAuthenticated(BasePermission):
    message = "You must be signed in."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.viewer.is_customer or info.context.viewer.is_staff


class IsCustomer(BasePermission):
    message = "You must be signed in as a customer."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.viewer.is_customer


class IsStaff(BasePermission):
    message = "Staff only."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.viewer.is_staff


class IsStaffOrApp(BasePermission):
    """Staff users and API keys: callers that act for the shop, not for one customer."""

    message = "Staff or API key only."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        return viewer.is_staff or viewer.is_app


@functools.cache
def HasPermission(*permissions: str) -> type[BasePermission]:  # noqa: N802 - used like a class
    """A permission class admitting viewers that hold any of ``permissions`` (a staff user's
    role, an API key's scopes): ``permission_classes=[HasPermission("catalog.manage")]``."""
    if not permissions:
        raise ValueError("HasPermission needs at least one permission name")
    wanted = " or ".join(permissions)

    class _HasPermission(BasePermission):
        message = f"Requires the permission {wanted}."
        error_extensions = {"code": "FORBIDDEN", "permission": list(permissions)}

        def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
            return info.context.viewer.has(*permissions)

    _HasPermission.__name__ = _HasPermission.__qualname__ = f"HasPermission({wanted})"
    return _HasPermission
