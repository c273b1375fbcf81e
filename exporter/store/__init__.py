"""The ClickHouse store (the `store` extra): connections (`connection`), the span table
(`schema`, `rows`), the lineage tables (`lineage`, `links`), loading a spool (`ingest`) and
exporting spans straight from a program (`clickhouse_export`).

Nothing is imported here; import the module you need."""
