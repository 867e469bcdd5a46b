-- Each stateful Vigil service keeps its own database (they share table names such as outbox).
CREATE DATABASE vigil_incident_log;
CREATE DATABASE vigil_retrainer;
CREATE DATABASE vigil_monitor;
CREATE DATABASE vigil_runbook_runner;
CREATE DATABASE vigil_drift_detector;
