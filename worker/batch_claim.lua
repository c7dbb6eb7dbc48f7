-- batch_claim: the submissions that need a worker now (SPEC §14: any worker
-- collects a batch, one at a time per batch, through a lease in Redis).
--
-- KEYS[1]  <base>bsubs: token -> unix ms when a worker must look at it next.
--          The score is the holder's lease: the worker that submits, records
--          or collects a submission keeps it in the future (batch_touch.lua);
--          one whose worker died falls due, and the next claim takes it.
-- Keys derived: <base>bsub:<token> (see batch_prepare.lua)
-- ARGV[1]  base; ARGV[2] now, unix ms; ARGV[3] the claim's lease, ms
-- ARGV[4]  the claiming worker; ARGV[5] at most this many
--
-- Each submission due (score <= now) is taken: its score moves to now +
-- lease and its collector becomes ARGV[4]. Scripts run one at a time, so of
-- two workers claiming at once the first takes it and the second does not
-- see it.
--
-- Returns an array, one entry per submission taken:
--   {token, state, provider, model, batch_id, complete_by, created_ms, n}
-- state "submitting" (its submitter died before recording it: search the
-- provider for it), "recorded" (poll and collect it) or "abandoned" (its
-- resolver died: run its jobs that no Kafka copy will run); strings, ""
-- for a field missing.
local base, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, token in ipairs(due) do
  local k = base .. 'bsub:' .. token
  local f = redis.call('HMGET', k, 'state', 'provider', 'model', 'batch_id', 'complete_by',
                       'created_ms', 'n')
  if not f[1] then
    redis.call('ZREM', KEYS[1], token)
  else
    redis.call('ZADD', KEYS[1], now + lease, token)
    redis.call('HSET', k, 'collector', ARGV[4])
    out[#out + 1] = {token, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '',
                     f[7] or '0'}
  end
end
return out
