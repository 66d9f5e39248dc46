"""Command handlers: one module per domain, Slack-free.

A handler takes a parsed :class:`~handlers.context.Command` and a
:class:`~handlers.context.Context`, calls adapters, and returns a
:class:`~handlers.reply.Reply`. The same handler serves Slack, the sandbox page and
``opsbot run``; nothing in this package may import ``bot``, ``slack_bolt`` or ``slack_sdk``
(an import-linter contract in pyproject.toml enforces it).

The modules that are not domains are the surface handlers are written against:
``reply`` (what a handler returns), ``context`` (what it receives), ``registry`` (the
``@command`` decorator), ``durations`` and ``settings`` (the typed configuration tree).
"""
