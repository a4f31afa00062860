-- Leases: the process training a run holds it (`lease_owner`, "host:pid:start") until
-- `lease_until` (Unix seconds) and renews it while it trains, so two sweeps over one store never
-- train the same run at once, and a crashed holder blocks the run only until its lease expires.

ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until REAL;
