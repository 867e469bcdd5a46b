"""``python -m services.incident_log`` runs the incident log."""

from services.incident_log.app import main

if __name__ == "__main__":
    main()
