"""The runbook runner: executes catalogued scripts for incidents, safely, and reports each run.

It consumes ``runbook.requests``, refuses anything outside the catalogue (or beyond a tier,
approval, parameter rule or concurrency limit), runs admitted scripts with no shell, a sanitised
environment, their own process group and a timeout that kills the group, captures capped output,
runs the verification, and publishes ``runbook.started`` / ``runbook.finished`` on
``runbook.results`` from an outbox. Each run id runs at most once; a run interrupted by the
runner's death is reported ``abandoned``, never re-run.
"""
