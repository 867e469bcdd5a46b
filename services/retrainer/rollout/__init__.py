"""Rollout: from a candidate that passed the gate to a promoted or withdrawn version.

Pure rules decide (``promotions``: a person's approval; ``canary``: the monitor's comparisons);
``governance`` records evaluations, requests and decisions in one transaction with the
registry's deployment change and the events; ``api`` and ``cli`` (``vigil approve`` and
``vigil reject``) face people.
"""
