-- The monitor database as Vigil 0.1.0 (commit 8f31373) created it on sqlite:
-- create_all's statements for that tree's tables, in dependency order, frozen. Never edit.
CREATE TABLE handled_batches (
	id INTEGER NOT NULL,
	handled_at DATETIME NOT NULL,
	event_ids BLOB NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_handled_batches_handled_at ON handled_batches (handled_at);
CREATE TABLE monitor_clocks (
	model VARCHAR NOT NULL,
	watermark DATETIME,
	expired_labels INTEGER NOT NULL,
	PRIMARY KEY (model)
);
CREATE TABLE monitor_comparison_outcomes (
	model VARCHAR NOT NULL,
	champion_version INTEGER NOT NULL,
	challenger_version INTEGER NOT NULL,
	side VARCHAR NOT NULL,
	seq INTEGER NOT NULL,
	payload VARCHAR NOT NULL,
	PRIMARY KEY (model, champion_version, challenger_version, side, seq)
);
CREATE TABLE monitor_episodes (
	fingerprint VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	PRIMARY KEY (fingerprint)
);
CREATE TABLE monitor_pairings (
	model VARCHAR NOT NULL,
	champion_version INTEGER NOT NULL,
	challenger_version INTEGER NOT NULL,
	started_at DATETIME NOT NULL,
	alerted BOOLEAN NOT NULL,
	next_seq INTEGER NOT NULL,
	PRIMARY KEY (model)
);
CREATE TABLE monitor_pending (
	model VARCHAR NOT NULL,
	request_id VARCHAR NOT NULL,
	model_version INTEGER NOT NULL,
	variant VARCHAR NOT NULL,
	side VARCHAR NOT NULL,
	occurred_at DATETIME NOT NULL,
	payload VARCHAR NOT NULL,
	PRIMARY KEY (model, request_id, model_version, variant)
);
CREATE TABLE monitor_windows (
	model VARCHAR NOT NULL,
	model_version INTEGER NOT NULL,
	variant VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	PRIMARY KEY (model, model_version, variant)
);
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
