-- Postgres peer of `points bench --mode transfer`: the same transfer workload, durably,
-- with the same hash chain the ledger keeps. Used by bench/postgres/run.sh.
--
-- Each transfer appends one row to `transfers`, whose `hash` is
--   sha256(prev_hash || row)   with row = int8send(seq) || int8send(from) || int8send(to)
--                                        || int8send(amount) || int8send(op_id)
--                                        || int8send(created_at in unix ms)
-- and `prev_hash` is the previous row's hash (32 zero bytes for the first row), so the table
-- is a hash chain that an auditor can recompute. Appends are serialised on the single
-- `chain_head` row, like the ledger's single-writer sequencer. Balances never go negative
-- (CHECK), op ids are unique per sender (idempotency key, like the ledger's op-id index),
-- and each account's history is indexed (sender and receiver), as the ledger indexes it.
--
-- psql -v members=N -f schema.sql

CREATE TABLE balances (
    account  bigint PRIMARY KEY,
    balance  bigint NOT NULL CHECK (balance >= 0)
);

CREATE TABLE chain_head (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq   bigint  NOT NULL,
    hash  bytea   NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE transfers (
    seq           bigint      PRIMARY KEY,
    from_account  bigint      NOT NULL REFERENCES balances (account),
    to_account    bigint      NOT NULL REFERENCES balances (account),
    amount        bigint      NOT NULL CHECK (amount > 0),
    op_id         bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    prev_hash     bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    CHECK (from_account <> to_account),
    UNIQUE (from_account, op_id)
);
CREATE INDEX transfers_from_history ON transfers (from_account, seq);
CREATE INDEX transfers_to_history ON transfers (to_account, seq);

-- One durable transfer: lock the chain head (the single writer), move the points, append the
-- chained row. Returns the new row's seq.
CREATE FUNCTION transfer(p_from bigint, p_to bigint, p_amount bigint, p_op_id bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    head      chain_head%ROWTYPE;
    ts        timestamptz := clock_timestamp();
    new_seq   bigint;
    row_bytes bytea;
    new_hash  bytea;
BEGIN
    SELECT * INTO head FROM chain_head WHERE one FOR UPDATE;
    UPDATE balances SET balance = balance - p_amount
        WHERE account = p_from AND balance >= p_amount;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient_funds or unknown_account: %', p_from;
    END IF;
    UPDATE balances SET balance = balance + p_amount WHERE account = p_to;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown_account: %', p_to;
    END IF;
    new_seq := head.seq + 1;
    row_bytes := int8send(new_seq) || int8send(p_from) || int8send(p_to) || int8send(p_amount)
              || int8send(p_op_id)
              || int8send((extract(epoch FROM ts) * 1000)::bigint);
    new_hash := sha256(head.hash || row_bytes);
    INSERT INTO transfers (seq, from_account, to_account, amount, op_id, created_at, prev_hash, hash)
        VALUES (new_seq, p_from, p_to, p_amount, p_op_id, ts, head.hash, new_hash);
    UPDATE chain_head SET seq = new_seq, hash = new_hash WHERE one;
    RETURN new_seq;
END
$$;

INSERT INTO chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
INSERT INTO balances (account, balance)
    SELECT g, 1000000000 FROM generate_series(1, :members) AS g;
ANALYZE;
