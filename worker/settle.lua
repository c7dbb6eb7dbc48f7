-- settle: charge the actual cost of one attempt to a budget chain, once.
--
-- KEYS[1]    the settle marker of (job_id, attempt): {ledger}:settled:<job>:<attempt>
-- KEYS[2..n] the spend hash of each budget of the chain for its current window:
--            {ledger}:b:<name>:<window>, field "spent" (integer nano-USD)
-- ARGV[1]    the actual cost in nano-USD (a non-negative integer)
-- ARGV[2]    the marker's time to live in seconds
--
-- Returns 1 when the cost was charged now, 0 when this (job_id, attempt) was
-- settled before (the call is a repeat: nothing changes). All keys share the
-- {ledger} hash tag, so the script touches one Redis Cluster slot.
local cost = tonumber(ARGV[1])
if not cost or cost < 0 or cost ~= math.floor(cost) then
  return redis.error_reply('settle: cost must be a non-negative integer')
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return 0
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[1])
end
return 1
