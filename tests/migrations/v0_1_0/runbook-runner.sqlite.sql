-- The runbook_runner database as Vigil 0.1.0 (commit 8f31373) created it on sqlite:
-- create_all's statements for that tree's tables, in dependency order, frozen. Never edit.
CREATE TABLE outbox (
	id INTEGER NOT NULL,
	event_id CHAR(32) NOT NULL,
	event_type VARCHAR NOT NULL,
	topic VARCHAR NOT NULL,
	payload VARCHAR NOT NULL,
	created_at DATETIME NOT NULL,
	published_at DATETIME,
	PRIMARY KEY (id),
	UNIQUE (event_id)
);
CREATE INDEX ix_outbox_unpublished ON outbox (published_at, id);
CREATE TABLE runbook_runs (
	run_id VARCHAR NOT NULL,
	request_digest VARCHAR NOT NULL,
	request_event_id CHAR(32) NOT NULL,
	correlation_id VARCHAR NOT NULL,
	incident_id VARCHAR NOT NULL,
	model VARCHAR NOT NULL,
	model_version INTEGER,
	runbook VARCHAR NOT NULL,
	tier VARCHAR NOT NULL,
	requested_by VARCHAR NOT NULL,
	approved_by VARCHAR,
	reason VARCHAR NOT NULL,
	supplied JSON,
	parameters JSON,
	state VARCHAR NOT NULL,
	owner VARCHAR,
	argv JSON,
	verify_argv JSON,
	script_sha256 VARCHAR,
	verify_script_sha256 VARCHAR,
	exit_code INTEGER,
	verify_exit_code INTEGER,
	stdout VARCHAR NOT NULL,
	stderr VARCHAR NOT NULL,
	verify_output VARCHAR NOT NULL,
	truncated BOOLEAN NOT NULL,
	detail VARCHAR NOT NULL,
	requested_at DATETIME NOT NULL,
	started_at DATETIME,
	finished_at DATETIME,
	PRIMARY KEY (run_id)
);
CREATE INDEX ix_runbook_runs_incident_id ON runbook_runs (incident_id);
CREATE INDEX ix_runbook_runs_limit ON runbook_runs (runbook, model, state);
CREATE INDEX ix_runbook_runs_requested_at ON runbook_runs (requested_at);
CREATE INDEX ix_runbook_runs_state ON runbook_runs (state);
