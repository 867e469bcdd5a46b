"""Vigil's services: scorer, monitor, drift detector, incident log, retrainer, runbook runner.

Each service is a package that imports only :mod:`contracts` and :mod:`services.runtime`; they
talk to each other only over Kafka topics.
"""
