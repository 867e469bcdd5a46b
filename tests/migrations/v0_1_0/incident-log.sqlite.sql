-- The incident_log database as Vigil 0.1.0 (commit 8f31373) created it on sqlite:
-- create_all's statements for that tree's tables, in dependency order, frozen. Never edit.
CREATE TABLE alerts (
	event_id CHAR(32) NOT NULL,
	type VARCHAR NOT NULL,
	incident_id VARCHAR,
	model VARCHAR NOT NULL,
	model_version INTEGER,
	fingerprint VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	severity VARCHAR,
	summary VARCHAR NOT NULL,
	evidence JSON,
	producer VARCHAR NOT NULL,
	occurred_at DATETIME NOT NULL,
	received_at DATETIME NOT NULL,
	disposition VARCHAR NOT NULL,
	suppressed_by VARCHAR,
	PRIMARY KEY (event_id)
);
CREATE INDEX ix_alerts_fingerprint ON alerts (fingerprint);
CREATE INDEX ix_alerts_incident_id ON alerts (incident_id);
CREATE INDEX ix_alerts_model_received ON alerts (model, received_at);
CREATE TABLE api_tokens (
	token_sha256 VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	role VARCHAR NOT NULL,
	created_at DATETIME NOT NULL,
	revoked_at DATETIME,
	PRIMARY KEY (token_sha256)
);
CREATE INDEX ix_api_tokens_name ON api_tokens (name);
CREATE TABLE incidents (
	id VARCHAR NOT NULL,
	model VARCHAR NOT NULL,
	model_version INTEGER,
	title VARCHAR NOT NULL,
	severity VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	fingerprint VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	tier VARCHAR NOT NULL,
	route JSON,
	routed_at DATETIME,
	opened_at DATETIME NOT NULL,
	last_seen DATETIME NOT NULL,
	tier_entered_at DATETIME,
	acknowledged_by VARCHAR,
	acknowledged_at DATETIME,
	mitigated_at DATETIME,
	resolved_at DATETIME,
	resolved_tier VARCHAR,
	owner VARCHAR,
	lease_expires_at DATETIME,
	claim_lease_seconds FLOAT,
	epoch INTEGER NOT NULL,
	runbook_position INTEGER NOT NULL,
	awaiting_version INTEGER,
	awaiting_since DATETIME,
	alert_count INTEGER NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_incidents_model_status ON incidents (model, status);
CREATE INDEX ix_incidents_opened_at ON incidents (opened_at);
CREATE INDEX ix_incidents_resolved_at ON incidents (resolved_at);
CREATE INDEX ix_incidents_status ON incidents (status);
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
CREATE TABLE processed_events (
	event_id CHAR(32) NOT NULL,
	processed_at DATETIME NOT NULL,
	PRIMARY KEY (event_id)
);
CREATE INDEX ix_processed_events_processed_at ON processed_events (processed_at);
CREATE TABLE retrains (
	id INTEGER NOT NULL,
	model VARCHAR NOT NULL,
	cause VARCHAR NOT NULL,
	requested_at DATETIME NOT NULL,
	finished_at DATETIME,
	PRIMARY KEY (id)
);
CREATE INDEX ix_retrains_model ON retrains (model);
CREATE TABLE silences (
	id VARCHAR NOT NULL,
	matcher JSON,
	starts_at DATETIME NOT NULL,
	ends_at DATETIME NOT NULL,
	created_by VARCHAR NOT NULL,
	reason VARCHAR NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_silences_ends_at ON silences (ends_at);
CREATE TABLE signals (
	id INTEGER NOT NULL,
	incident_id VARCHAR NOT NULL,
	fingerprint VARCHAR NOT NULL,
	open_fingerprint VARCHAR,
	kind VARCHAR NOT NULL,
	severity VARCHAR NOT NULL,
	model_version INTEGER,
	first_seen DATETIME NOT NULL,
	last_seen DATETIME NOT NULL,
	occurrences INTEGER NOT NULL,
	recovered_at DATETIME,
	summary VARCHAR NOT NULL,
	evidence JSON,
	PRIMARY KEY (id),
	UNIQUE (open_fingerprint),
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE INDEX ix_signals_fingerprint ON signals (fingerprint);
CREATE UNIQUE INDEX ix_signals_incident_fingerprint ON signals (incident_id, fingerprint);
CREATE INDEX ix_signals_incident_id ON signals (incident_id);
CREATE TABLE timeline (
	id INTEGER NOT NULL,
	incident_id VARCHAR NOT NULL,
	at DATETIME NOT NULL,
	actor VARCHAR NOT NULL,
	action VARCHAR NOT NULL,
	from_status VARCHAR,
	to_status VARCHAR,
	from_tier VARCHAR,
	to_tier VARCHAR,
	details JSON,
	PRIMARY KEY (id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE INDEX ix_timeline_incident_id ON timeline (incident_id);
CREATE TABLE timers (
	id INTEGER NOT NULL,
	incident_id VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	tier VARCHAR NOT NULL,
	due_at DATETIME NOT NULL,
	epoch INTEGER NOT NULL,
	fired_at DATETIME,
	PRIMARY KEY (id),
	FOREIGN KEY(incident_id) REFERENCES incidents (id)
);
CREATE INDEX ix_timers_incident_id ON timers (incident_id);
CREATE INDEX ix_timers_pending ON timers (fired_at, due_at);
