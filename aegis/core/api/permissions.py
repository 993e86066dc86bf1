"""One permission class enforcing the scope each view declares (CONTRACT §5).

A view states the scope it needs to read (GET, HEAD, OPTIONS) and to write::

    read_scope = Scope.READONLY
    write_scope = Scope.ISSUER

A view that states nothing needs `admin` for everything (fail closed). Public views set
`permission_classes = [AllowAny]` and `authentication_classes = []`.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from aegis.core.api.authentication import scope_of
from aegis.core.api.scopes import Scope

# Each scope can do what the scopes before it can.
_RANK = {Scope.READONLY: 0, Scope.ISSUER: 1, Scope.ADMIN: 2}


def scope_allows(held: str, needed: str) -> bool:
    return _RANK.get(held, -1) >= _RANK[needed]


class HasScope(BasePermission):
    """401 without credentials (DRF raises NotAuthenticated when no authenticator succeeded),
    403 `permission_denied` when the scope held is smaller than the one needed."""

    message = "Your API key's scope does not allow this request."

    def has_permission(self, request, view) -> bool:
        held = scope_of(request)
        if held is None:
            return False
        if request.method in SAFE_METHODS:
            needed = getattr(view, "read_scope", Scope.ADMIN)
        else:
            needed = getattr(view, "write_scope", Scope.ADMIN)
        return scope_allows(held, needed)
