"""The scorer service. It serves the versions the registry deploys: requests from
``scoring.requests`` in batches and from ``POST /predict``, a sticky champion / challenger split,
and one ``prediction.made`` per request (plus shadow predictions that are never returned)."""
