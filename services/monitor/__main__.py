"""``python -m services.monitor``: run the monitor with settings from the environment."""

from services.monitor.app import main

if __name__ == "__main__":
    main()
