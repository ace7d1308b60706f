-- An LLM call's estimate is held on the account, not in the ledger: the
-- ledger keeps only what was bought, given and used (one charge per call
-- instead of a hold, its release and the charge). `held` is the sum of
-- the estimates of the calls in flight (their credit_holds rows); what a
-- tenant can spend is balance - held, and balance stays the sum of the
-- entries. Holds from before this migration are in the ledger
-- (in_ledger = 1): their release is a ledger entry, as before.
ALTER TABLE billing_accounts ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credit_holds ADD COLUMN in_ledger INTEGER NOT NULL DEFAULT 1;
