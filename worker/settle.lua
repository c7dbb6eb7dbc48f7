-- settle: charge the actual cost of one attempt to a budget chain, once; and,
-- for the attempt that answered, keep the job's finished outputs until Kafka
-- has them (SPEC §9: a result finished but not acknowledged is re-sent, not
-- re-bought).
--
-- KEYS[1]    the settle marker of (job_id, attempt): {ledger}:settled:<job>:<attempt>
-- KEYS[2]    the job's dedupe hash: {ledger}:job:<job> (fields attempts, state, outputs)
-- KEYS[3..n] the spend hash of each budget of the chain for its current window:
--            {ledger}:b:<name>:<window>, field "spent" (integer nano-USD)
-- ARGV[1]    the actual cost in nano-USD (a non-negative integer)
-- ARGV[2]    the settle marker's time to live in seconds
-- ARGV[3]    the attempt number
-- ARGV[4]    the dedupe hash's time to live in seconds (worker.dedupe_ttl_s)
-- ARGV[5]    the job's outputs, one JSON per line (result first), or "" while
--            the job goes on
--
-- Returns 1 when the cost was charged now, 0 when this (job_id, attempt) was
-- settled before (nothing is charged again). All keys share the {ledger}
-- hash tag, so the script touches one Redis Cluster slot.
local cost = tonumber(ARGV[1])
if not cost or cost < 0 or cost ~= math.floor(cost) then
  return redis.error_reply('settle: cost must be a non-negative integer')
end
local charged = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  for i = 3, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[1])
  end
  charged = 1
end
local attempt = tonumber(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
if attempt > used then
  redis.call('HSET', KEYS[2], 'attempts', attempt)
end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[2], 'state') ~= 'done' then
  redis.call('HSET', KEYS[2], 'state', 'pending', 'outputs', ARGV[5])
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return charged
