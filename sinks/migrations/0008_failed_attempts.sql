-- 0008: failed delivery attempts per delivery (DELIVERY_FAILED carrier milestones, e.g. FedEx's
-- "Customer not available or business closed" through EasyPost; each distinct attempt time once).
-- Attempts on a delivery = failed_attempts + (delivered_at IS NOT NULL).
ALTER TABLE {db}.delivery_status ADD COLUMN IF NOT EXISTS failed_attempts UInt16 DEFAULT 0 AFTER out_of_sequence;
