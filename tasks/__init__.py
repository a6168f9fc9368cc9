"""Prefect tasks: each wraps one platform step with retries, logging and artifacts."""
