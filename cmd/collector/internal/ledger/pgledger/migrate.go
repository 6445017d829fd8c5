package pgledger

// migrations are the schema's versions, applied in order at Open in one
// transaction each and recorded in schema_migrations. A migration is never
// edited once released: a change is a new one at the end.
//
// Unsigned 64-bit values (seqs, batches, tickets) are stored in bigint
// with the same bits (so 2^63 and above read as negative); queries order
// them with "(x < 0), x" to keep the unsigned order. A device's head is the
// binary record the bbolt ledger stores too (ledger.Head.Encode), written
// only under the row's lock.
var migrations = []string{
	1: `
CREATE TABLE meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);
CREATE TABLE devices (
	device bytea PRIMARY KEY,
	head   bytea NOT NULL,           -- ledger.Head.Encode()
	held   integer NOT NULL DEFAULT 0, -- rows in held
	used   boolean NOT NULL DEFAULT false, -- anything stored, held, broken or announced
	lost   jsonb                     -- the latest loss announcement
);
CREATE TABLE attestations (
	device  bytea NOT NULL,
	seq     bigint NOT NULL,
	digest  bytea NOT NULL,
	wire    bytea NOT NULL,
	verdict jsonb NOT NULL,
	PRIMARY KEY (device, seq)
);
CREATE TABLE modes (
	device bytea NOT NULL,
	mode   text NOT NULL,
	meters numeric NOT NULL,
	PRIMARY KEY (device, mode)
);
CREATE TABLE held (
	device   bytea NOT NULL,
	seq      bigint NOT NULL,
	digest   bytea NOT NULL,
	received bigint NOT NULL, -- unix ns
	wire     bytea NOT NULL,
	PRIMARY KEY (device, seq)
);
CREATE TABLE breaks (
	device   bytea NOT NULL,
	from_seq bigint NOT NULL,
	to_seq   bigint NOT NULL,
	record   jsonb NOT NULL,
	PRIMARY KEY (device, from_seq)
);
CREATE TABLE forks (
	device bytea NOT NULL,
	seq    bigint NOT NULL,
	digest bytea NOT NULL,
	record jsonb NOT NULL,
	PRIMARY KEY (device, seq, digest)
);
CREATE TABLE tickets (
	batch   bigint NOT NULL,
	device  bytea NOT NULL,
	seq     bigint NOT NULL,
	tickets bigint NOT NULL,
	late    boolean NOT NULL, -- arrived after the batch's draw: not in it
	PRIMARY KEY (batch, device, seq)
);
CREATE TABLE undrawn (
	batch bigint PRIMARY KEY
);
CREATE TABLE draws (
	batch  bigint PRIMARY KEY, -- the claim: one draw per batch
	record jsonb NOT NULL
);
CREATE TABLE awards (
	batch  bigint NOT NULL,
	device bytea NOT NULL,
	wins   bigint NOT NULL,
	micro  bigint NOT NULL,
	PRIMARY KEY (batch, device)
);
CREATE INDEX awards_device ON awards (device);
CREATE TABLE registry (
	device bytea PRIMARY KEY,
	added  timestamptz NOT NULL DEFAULT now()
);
`,
}

// schemaVersion is the version this code writes and reads.
var schemaVersion = len(migrations) - 1
