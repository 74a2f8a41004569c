-- pgbench script: one durable, hash-chained transfer per transaction between two distinct
-- random members (the workload of `points bench --mode transfer`). Needs -D members=N.
\set from random(1, :members)
\set to 1 + (:from + random(0, :members - 2)) % :members
\set amount random(1, 50)
\set op random(1, 9223372036854775806)
SELECT transfer(:from, :to, :amount, :op);
