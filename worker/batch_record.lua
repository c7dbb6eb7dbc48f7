-- batch_record: the provider accepted a submission (SPEC §14): its batch id is
-- recorded, its jobs turn "batched" (their offsets may now be committed), and
-- their reservations are extended to their complete_by + 1 h.
--
-- KEYS[1]  the submission: <base>bsub:<token> (see batch_prepare.lua)
-- KEYS[2]  <base>bsubs (see batch_prepare.lua)
-- KEYS[3]  the batches in flight, as the dashboard reads them: <base>batches
--          (sorted set of batch ids scored by submission, unix ms)
-- KEYS[4]  the batch's dashboard hash: <base>batch:<batch_id>
-- KEYS[5]  the lease index: <base>leases
-- Keys derived (same {ledger} hash tag): <base>job:<job_id>,
--          <base>lease:<job_id>:<attempt>
-- ARGV[1]  base; ARGV[2] the provider's batch id; ARGV[3] now, unix ms
-- ARGV[4]  unix ms when a worker must next look at it (the recorder holds
--          it as its collector until then, renewing with batch_touch.lua)
-- ARGV[5]  the worker recording it (its collector)
-- ARGV[6]  how long past a job's complete_by its lease lasts, ms (1 h)
-- ARGV[7]  the dedupe hash's time to live, s
-- ARGV[8]  the earliest complete_by as RFC 3339 text (for the dashboard)
--
-- Only a submission in state "submitting" is recorded: state "recorded",
-- batch_id, recorded_ms, collector. Each of its jobs whose hash still names
-- this submission (next_sub) in state "submitting" turns "batched" with sub
-- <token> and committed "1" (next_sub removed); each live lease moves to the job's complete_by + ARGV[6].
-- The dashboard hash gets provider, model, state, requests_total,
-- requests_done, requests_failed, complete_by, reserved_nusd (the leases
-- extended), spent_nusd (0), token.
--
-- Returns {"recorded", batch_id}; for a submission not "submitting" (a
-- repeat, or the orphan search came first) {state, its batch_id or ""};
-- {"unknown", ""} when there is no such submission.
local base, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'state', 'batch_id', 'token', 'n', 'provider', 'model')
if not f[1] then
  return {'unknown', ''}
end
if f[1] ~= 'submitting' then
  return {f[1], f[2] or ''}
end
local token, n = f[3], tonumber(f[4])
redis.call('HSET', KEYS[1], 'state', 'recorded', 'batch_id', id, 'recorded_ms', now,
           'collector', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], token)
local ttl, ext = tonumber(ARGV[7]), tonumber(ARGV[6])
local reserved = 0
for i = 0, n - 1 do
  local r = redis.call('HGET', KEYS[1], 'r:' .. i)
  local attempt, job = string.match(r or '', '^(%d+) (.*)$')
  if job then
    local jk = base .. 'job:' .. job
    local j = redis.call('HMGET', jk, 'state', 'next_sub', 'complete_by')
    if j[1] == 'submitting' and j[2] == token then
      redis.call('HSET', jk, 'state', 'batched', 'sub', token, 'committed', '1')
      redis.call('HDEL', jk, 'next_sub')
      redis.call('EXPIRE', jk, ttl)
    end
    local member = job .. ':' .. attempt
    local lk = base .. 'lease:' .. member
    local l = redis.call('HMGET', lk, 'state', 'estimate')
    if l[1] == 'live' then
      local expires = (tonumber(j[3]) or now) + ext
      redis.call('HSET', lk, 'expires_ms', expires)
      redis.call('ZADD', KEYS[5], expires, member)
      reserved = reserved + tonumber(l[2])
    end
  end
end
redis.call('ZADD', KEYS[3], now, id)
redis.call('HSET', KEYS[4], 'provider', f[5], 'model', f[6], 'state', 'validating',
           'requests_total', n, 'requests_done', 0, 'requests_failed', 0,
           'complete_by', ARGV[8], 'reserved_nusd', string.format('%.0f', reserved),
           'spent_nusd', 0, 'token', token)
return {'recorded', id}
