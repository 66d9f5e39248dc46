"""Governance: the pipeline steps every command passes, in DESIGN.md §4's order.

Each step is a small function ``(invocation, proceed) -> Reply`` tested on its own;
:func:`bot.runtime.governance_steps` puts them in order.
"""
