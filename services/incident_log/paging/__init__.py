"""Paging: who is on call, who an incident pages, and delivering the pages reliably.

It lives inside the incident log (ADR 0010) because a page must be written in the same transaction
as the incident change that causes it, people are the names API tokens carry, and an acknowledge
link changes the incident. Pure modules (``schedules``, ``planning``, ``messages``, ``links``)
decide; ``store``, ``channels`` and ``dispatcher`` do the I/O; ``api`` and ``cli`` face people.
"""
