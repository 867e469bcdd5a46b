"""Alembic's environment: runs on the connection :mod:`services.runtime.migrations` hands it."""

from alembic import context

from services.runtime.migrations import run_environment

run_environment(context)
