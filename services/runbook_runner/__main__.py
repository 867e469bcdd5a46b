"""``python -m services.runbook_runner`` runs the runbook runner."""

from services.runbook_runner.app import main

if __name__ == "__main__":
    main()
