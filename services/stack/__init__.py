"""The embedded stack: the broker and every service as supervised processes under one command
(``vigil up``), with state under one folder. Imports no service: it runs them as processes."""
