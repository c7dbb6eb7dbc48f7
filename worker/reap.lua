-- reap: charge the leases whose worker is gone (SPEC §7: a lease that expires
-- is charged at its estimate and reported with "estimated": true).
--
-- KEYS[1]  the lease index: <base>leases (member "<job_id>:<attempt>", score
--          the expiry in unix ms)
-- Keys derived (same {ledger} hash tag): <base>lease:<member> (see
--          reserve.lua), <base>settled:<member>, <base>b:<name>:<window>
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  now, unix ms (the caller's clock)
-- ARGV[3]  at most this many leases per call
-- ARGV[4]  the settle marker's time to live in seconds
-- ARGV[5]  how long (ms) a reaped lease waits for reap_ack before it is
--          reported again
-- ARGV[6]  the day window of now, "YYYY-MM-DD"; ARGV[7] the stats hash's
--          time to live, s (see the stats block below)
--
-- Takes up to ARGV[3] members with expiry < now. A live lease is charged
-- exactly once: on the windows it holds, spent += estimate and reserved -=
-- estimate (never below zero); the marker "<estimate> estimated" is written
-- so that a late settle of the attempt is a repeat (see settle.lua for why it
-- then adds nothing); the lease turns "reaped". Scripts run one at a time, so
-- of two workers reaping at once the first takes the lease and the second
-- does not see it.
--
-- A lease reserved for a provider batch (field sub, batch_prepare.lua) whose
-- submission is still "submitting" is not charged blindly (SPEC §14): its
-- worker died between preparing and recording the batch, and only the
-- orphan search knows whether a provider batch holds it (then it is
-- recorded, the lease extended, and settled from the batch's answers) or
-- not (then batch_abandon.lua releases it at zero). It is skipped, due
-- again ARGV[5] ms later, and not returned.
--
-- A reaped lease stays indexed, due again ARGV[5] ms later, until reap_ack
-- removes it once the caller's cost record is acknowledged: a worker that
-- dies between this reply and Kafka's acknowledgement leaves the record to
-- the next reaper. Such a repeat report charges nothing and carries the same
-- (job_id, attempt, estimate), so the cost records stay one per attempt.
--
-- Returns an array, one entry per lease taken:
--   {job_id, attempt, budget, estimate, model, provider, worker, first}
-- attempt is an integer, estimate a decimal string (nano-USD), first 1 when
-- charged by this call and 0 for a report repeated for want of reap_ack.
local base, now, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local later = tonumber(now) + tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, max)
local out = {}
for _, member in ipairs(due) do
  local key = base .. 'lease:' .. member
  local f = redis.call('HMGET', key, 'job_id', 'attempt', 'budget', 'estimate', 'model',
                       'provider', 'worker', 'state', 'n', 'name1', 'window1', 'name2',
                       'window2', 'name3', 'window3', 'name4', 'window4')
  local sub = f[1] and redis.call('HGET', key, 'sub')
  if not f[1] then
    redis.call('ZREM', KEYS[1], member) -- an index entry without its lease
  elseif f[8] == 'live' and sub and
         redis.call('HGET', base .. 'bsub:' .. sub, 'state') == 'submitting' then
    redis.call('ZADD', KEYS[1], later, member) -- the orphan search decides
  else
    local first = 0
    if f[8] == 'live' then
      first = 1
      for i = 1, tonumber(f[9]) do
        local bkey = base .. 'b:' .. f[8 + 2 * i] .. ':' .. f[9 + 2 * i]
        redis.call('HINCRBY', bkey, 'spent', f[4])
        if tonumber(redis.call('HINCRBY', bkey, 'reserved', '-' .. f[4])) < 0 then
          redis.call('HSET', bkey, 'reserved', 0)
        end
      end
      redis.call('SET', base .. 'settled:' .. member, f[4] .. ' estimated', 'EX', tonumber(ARGV[4]))
      redis.call('HSET', key, 'state', 'reaped')
    end
    redis.call('ZADD', KEYS[1], later, member)
    out[#out + 1] = {f[1], tonumber(f[2]), f[3], f[4], f[5], f[6], f[7], first}
  end
end

-- Stats (the dashboard, SPEC §15), as settle.lua keeps them: each lease charged
-- by this call is one call of its model and its estimate that model's spend,
-- in the day of now. A repeated report adds nothing.
for _, e in ipairs(out) do
  if e[8] == 1 then
    local key, pm = base .. 'stats:d:' .. ARGV[6], (e[6] or '') .. ':' .. (e[5] or '')
    redis.call('HINCRBY', key, 'spend:' .. pm, e[4])
    if redis.call('HINCRBY', key, 'calls:' .. pm, 1) == 1 then
      redis.call('EXPIRE', key, tonumber(ARGV[7]))
    end
  end
end
return out
