-- batch_finish: a submission whose every request has been dealt with
-- (answered and produced, or moved on: SPEC §14) leaves the books.
--
-- KEYS[1]  <base>bsub:<token>; KEYS[2] <base>bsubs; KEYS[3] <base>batches
-- Keys derived: <base>batch:<batch_id>, <base>batches_ended
-- ARGV[1]  base; ARGV[2] the worker (its collector); ARGV[3] the final state
--          ("collected", or "abandoned" for one never accepted)
-- ARGV[4]  now, unix ms; ARGV[5] what its answers were charged, nano-USD
--          ("" when not known)
--
-- Only the submission's collector finishes it: it leaves <base>bsubs, its
-- batch leaves <base>batches (the batches in flight) for <base>batches_ended
-- (sorted set, scored by the end, unix ms; entries older than a day are
-- dropped here), and its dashboard hash stays a day with state ARGV[3],
-- ended_ms, reserved_nusd 0 and spent_nusd ARGV[5]: `promptyard batches`
-- lists the recent ones. The submission hash keeps its final state for a
-- day. Returns 1, or 0 when ARGV[2] is not its collector (another worker
-- took it over: it finishes it).
local f = redis.call('HMGET', KEYS[1], 'collector', 'token', 'batch_id')
if f[1] ~= ARGV[2] then
  return 0
end
local base, now = ARGV[1], tonumber(ARGV[4])
redis.call('ZREM', KEYS[2], f[2])
if f[3] and f[3] ~= '' then
  redis.call('ZREM', KEYS[3], f[3])
  local bk = base .. 'batch:' .. f[3]
  if redis.call('EXISTS', bk) == 1 then
    redis.call('HSET', bk, 'state', ARGV[3], 'ended_ms', ARGV[4], 'reserved_nusd', 0)
    if ARGV[5] ~= '' then
      redis.call('HSET', bk, 'spent_nusd', ARGV[5])
    end
    redis.call('EXPIRE', bk, 86400)
    local ended = base .. 'batches_ended'
    redis.call('ZADD', ended, now, f[3])
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', now - 86400000)
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
return 1
