"""opsbot's process side: CLI, config, transports, the command pipeline, governance,
rendering, the store, the scheduler and the sandbox. Only this package knows about Slack.
"""
