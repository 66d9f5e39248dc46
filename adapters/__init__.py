"""Adapters: one module per external system, named in the domain's words.

Adapters hold no Slack and no policy (an import-linter contract forbids importing
``handlers`` or ``bot``). They take plain constructor arguments (URL, token, timeouts),
so ``bot`` builds them from the config and tests point them at local emulators.

:class:`Adapters` is what handlers see: one lazily built client per system, so a system
that is down or not configured only fails the commands that need it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from adapters.errors import NotConfigured

if TYPE_CHECKING:
    from adapters.argocd import ArgoCD

T = TypeVar("T")


class Adapters:
    """Lazily built adapters, one per external system, shared by every handler."""

    def __init__(self, factories: Mapping[str, Callable[[], object]] | None = None) -> None:
        self._factories = dict(factories or {})
        self._built: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str, kind: type[T], hint: str) -> T:
        """Build (once) and return the adapter ``name``; ``hint`` says how to configure it."""
        with self._lock:
            if name not in self._built:
                factory = self._factories.get(name)
                if factory is None:
                    raise NotConfigured(name, f"not configured: {hint}")
                self._built[name] = factory()
            adapter = self._built[name]
        if not isinstance(adapter, kind):
            raise TypeError(f"adapter {name!r} is a {type(adapter).__name__}, not {kind.__name__}")
        return adapter

    @property
    def argocd(self) -> ArgoCD:
        """The Argo CD client (``[argocd]``)."""
        from adapters.argocd import ArgoCD

        return self.get(
            "argocd", ArgoCD, "add an [argocd] section with url and token_env to opsbot.toml"
        )

    def configured(self, name: str) -> bool:
        """True when opsbot.toml configures the system ``name``."""
        return name in self._factories

    def close(self) -> None:
        """Close every adapter that was built (their HTTP connection pools)."""
        with self._lock:
            built, self._built = self._built, {}
        for adapter in built.values():
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
