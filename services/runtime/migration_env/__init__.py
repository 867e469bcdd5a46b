"""Alembic's script location for every service database: ``env.py`` and the revision template.

The revisions themselves live with each service (``services/<service>/migrations/``).
"""
