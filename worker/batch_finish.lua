-- batch_finish: a submission whose every request has been dealt with
-- (answered and produced, or moved on: SPEC §14) leaves the books.
--
-- KEYS[1]  <base>bsub:<token>; KEYS[2] <base>bsubs; KEYS[3] <base>batches
-- Keys derived: <base>batch:<batch_id>
-- ARGV[1]  base; ARGV[2] the worker (its collector); ARGV[3] the final state
--          ("collected", or "abandoned" for one never accepted)
--
-- Only the submission's collector finishes it: it leaves <base>bsubs, its
-- batch leaves <base>batches and its dashboard hash goes; the submission
-- hash keeps its final state for a day. Returns 1, or 0 when ARGV[2] is not
-- its collector (another worker took it over: it finishes it).
local f = redis.call('HMGET', KEYS[1], 'collector', 'token', 'batch_id')
if f[1] ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[2], f[2])
if f[3] and f[3] ~= '' then
  redis.call('ZREM', KEYS[3], f[3])
  redis.call('DEL', ARGV[1] .. 'batch:' .. f[3])
end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
return 1
