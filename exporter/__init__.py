"""Where clew's spans go: the spool (`spool`), the SDK wiring that never drops a span
(`processor`, `distro`), and, with the `store` extra, ClickHouse (`store`, `ingest`).

Nothing is imported here; import the module you need, so that using one part does not load
the others (the OpenTelemetry SDK, the ClickHouse client)."""
