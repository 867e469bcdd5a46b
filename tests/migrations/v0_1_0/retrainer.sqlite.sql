-- The retrainer database as Vigil 0.1.0 (commit 8f31373) created it on sqlite:
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
CREATE TABLE processed_events (
	event_id CHAR(32) NOT NULL,
	processed_at DATETIME NOT NULL,
	PRIMARY KEY (event_id)
);
CREATE INDEX ix_processed_events_processed_at ON processed_events (processed_at);
CREATE TABLE registry_models (
	name VARCHAR(128) NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE retrainer_asks (
	id INTEGER NOT NULL,
	model VARCHAR(128) NOT NULL,
	cause TEXT NOT NULL,
	"trigger" VARCHAR(16) NOT NULL,
	requested_by VARCHAR NOT NULL,
	reason TEXT NOT NULL,
	incident_id VARCHAR,
	at DATETIME NOT NULL,
	admission VARCHAR(16) NOT NULL,
	run_id VARCHAR(40),
	detail TEXT NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_retrainer_asks_model_at ON retrainer_asks (model, at);
CREATE TABLE retrainer_evaluations (
	evaluation_id VARCHAR(40) NOT NULL,
	model VARCHAR(128) NOT NULL,
	candidate_version INTEGER NOT NULL,
	champion_version INTEGER,
	dataset_digest VARCHAR(71) NOT NULL,
	passed BOOLEAN NOT NULL,
	figures TEXT NOT NULL,
	failures TEXT NOT NULL,
	summary TEXT NOT NULL,
	incident_id VARCHAR,
	run_id VARCHAR(40) NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (evaluation_id)
);
CREATE INDEX ix_retrainer_evaluations_model ON retrainer_evaluations (model);
CREATE TABLE retrainer_live_examples (
	model VARCHAR(128) NOT NULL,
	request_id VARCHAR(200) NOT NULL,
	features TEXT,
	label VARCHAR,
	seen_at DATETIME NOT NULL,
	labelled_at DATETIME,
	PRIMARY KEY (model, request_id)
);
CREATE INDEX ix_retrainer_live_examples_labelled ON retrainer_live_examples (model, labelled_at);
CREATE INDEX ix_retrainer_live_examples_seen ON retrainer_live_examples (seen_at);
CREATE TABLE retrainer_produced_datasets (
	digest VARCHAR(71) NOT NULL,
	model VARCHAR(128) NOT NULL,
	run_id VARCHAR(40) NOT NULL,
	live_from INTEGER NOT NULL,
	PRIMARY KEY (digest)
);
CREATE TABLE retrainer_promotions (
	request_id VARCHAR(40) NOT NULL,
	model VARCHAR(128) NOT NULL,
	version INTEGER NOT NULL,
	evaluation_id VARCHAR(40) NOT NULL,
	requested_by VARCHAR NOT NULL,
	requesters TEXT NOT NULL,
	summary TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	expires_at DATETIME NOT NULL,
	state VARCHAR(16) NOT NULL,
	decided_by VARCHAR,
	decided_at DATETIME,
	comment TEXT,
	incident_id VARCHAR,
	rollout VARCHAR(16),
	rollout_reason TEXT,
	rollout_at DATETIME,
	champion_version INTEGER,
	canary_model VARCHAR(128),
	PRIMARY KEY (request_id),
	UNIQUE (evaluation_id),
	UNIQUE (canary_model)
);
CREATE INDEX ix_retrainer_promotions_expires_at ON retrainer_promotions (expires_at);
CREATE INDEX ix_retrainer_promotions_model ON retrainer_promotions (model);
CREATE TABLE retrainer_runs (
	run_id VARCHAR(40) NOT NULL,
	model VARCHAR(128) NOT NULL,
	state VARCHAR(16) NOT NULL,
	queued_model VARCHAR(128),
	running_model VARCHAR(128),
	"trigger" VARCHAR(16) NOT NULL,
	causes TEXT NOT NULL,
	requesters TEXT NOT NULL,
	requested_by VARCHAR NOT NULL,
	reason TEXT NOT NULL,
	incident_id VARCHAR,
	parameters TEXT,
	requested_at DATETIME NOT NULL,
	not_before DATETIME NOT NULL,
	started_at DATETIME,
	lease_expires_at DATETIME,
	finished_at DATETIME,
	dataset TEXT,
	live_from INTEGER,
	candidate_version INTEGER,
	evaluation_id VARCHAR,
	cached_steps TEXT NOT NULL,
	failure TEXT,
	dataset_changes TEXT,
	PRIMARY KEY (run_id),
	UNIQUE (queued_model),
	UNIQUE (running_model)
);
CREATE INDEX ix_retrainer_runs_model ON retrainer_runs (model);
CREATE TABLE registry_deployment_revisions (
	model VARCHAR(128) NOT NULL,
	revision INTEGER NOT NULL,
	action VARCHAR(32) NOT NULL,
	actor VARCHAR NOT NULL,
	reason TEXT NOT NULL,
	incident_id VARCHAR,
	at DATETIME NOT NULL,
	deployment TEXT NOT NULL,
	PRIMARY KEY (model, revision),
	FOREIGN KEY(model) REFERENCES registry_models (name)
);
CREATE INDEX ix_registry_deployment_revisions_at ON registry_deployment_revisions (at);
CREATE TABLE registry_versions (
	model VARCHAR(128) NOT NULL,
	version INTEGER NOT NULL,
	artifact_sha256 VARCHAR(64) NOT NULL,
	registered_at DATETIME NOT NULL,
	record TEXT NOT NULL,
	PRIMARY KEY (model, version),
	FOREIGN KEY(model) REFERENCES registry_models (name)
);
CREATE INDEX ix_registry_versions_artifact_sha256 ON registry_versions (artifact_sha256);
CREATE TABLE registry_aliases (
	model VARCHAR(128) NOT NULL,
	alias VARCHAR(32) NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (model, alias),
	CONSTRAINT uq_registry_alias_one_per_version UNIQUE (model, version),
	FOREIGN KEY(model, version) REFERENCES registry_versions (model, version)
);
