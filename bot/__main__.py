"""``python -m bot`` is the same as the ``opsbot`` command."""

from bot.cli import main

raise SystemExit(main())
