"""Prefect flows: compositions of tasks; no SQL and no business logic of their own."""
