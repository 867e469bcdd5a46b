"""``python -m services.drift_detector`` runs the drift detector."""

from services.drift_detector.app import main

if __name__ == "__main__":
    main()
