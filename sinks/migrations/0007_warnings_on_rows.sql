-- 0007: the adapter's warnings of a message ("kind: message", e.g. "mapping: GTIN ... not in the
-- product master", "trailer: IEA missing") on the events it carried and on its dead letter, beside
-- their counts by kind in ingest_stats.warnings_by_kind.
ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS warnings Array(String) DEFAULT [] AFTER attributes;
ALTER TABLE {db}.dead_letters ADD COLUMN IF NOT EXISTS warnings Array(String) DEFAULT [] AFTER payload_b64;
