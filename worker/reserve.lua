-- reserve: hold an attempt's estimate on a budget and on every parent, in one
-- atomic step (SPEC §7), and hand out the attempt's number.
--
-- KEYS[1]  the job's dedupe hash: <base>job:<job_id> (field "attempts": the
--          attempt numbers handed out so far; "token:<token>": the attempt a
--          reservation token got)
-- KEYS[2]  the lease index: <base>leases (sorted set, member "<job_id>:<attempt>",
--          score the lease's expiry in unix ms)
-- Keys derived from ARGV (same {ledger} hash tag, so the same Cluster slot):
--          <base>meta:<name>            limit_nusd, period, parent of a budget
--          <base>b:<name>:<window>      spent, reserved of a budget's window
--          <base>lease:<job_id>:<attempt>  the lease: job_id, attempt, budget,
--                                       estimate, model, provider, worker,
--                                       token, expires_ms, state (live|reaped),
--                                       n, name1..nameN, window1..windowN
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  the day window now, "YYYY-MM-DD" (UTC, from the worker's clock)
-- ARGV[3]  the month window now, "YYYY-MM"
-- ARGV[4]  budget name
-- ARGV[5]  job id
-- ARGV[6]  estimate, nano-USD (a non-negative integer, at most MAX_NUSD)
-- ARGV[7]  now, unix ms
-- ARGV[8]  lease duration, ms
-- ARGV[9]  reservation token: the same on a retry of this reservation (a lost
--          reply), "" for none
-- ARGV[10] model, ARGV[11] provider, ARGV[12] worker id (kept for the cost
--          record a reap publishes)
-- ARGV[13] the dedupe hash's time to live, s (worker.dedupe_ttl_s)
-- ARGV[14] "1": look the job up first, as dedupe_check.lua does (the first
--          reservation of a job consumed from Kafka: one round trip for both);
--          then every answer below but done and pending ends with one more
--          element: the array of the job's kept cost records (see answer())
-- ARGV[15] "1": the auto strategy's classifier call (SPEC §6: charged to the
--          job as attempt 0). It gets attempt 0 when the job has had no
--          attempt number yet; otherwise (the job runs again after a crash)
--          the next number, like any attempt: reserved and charged, never
--          free, and never sharing a settle marker with an earlier call.
--
-- The chain is walked from the meta hashes: the budget, its parent, and so on,
-- at most 4 budgets; each is checked in the window its period selects ("all",
-- ARGV[2] or ARGV[3]). Nothing is written unless every budget of the chain
-- has spent + reserved + estimate <= limit.
--
-- Returns one of
--   {"done", ""}                        (ARGV[14] "1") its ok result was
--                                       acknowledged: nothing reserved, skip it
--   {"pending", outputs}                (ARGV[14] "1") finished but not
--                                       acknowledged: nothing reserved, re-send
--   {"batched", ""}                     (ARGV[14] "1") a provider batch holds it
--                                       (SPEC §14): its collector answers it
--   {"submitting", ""}                  (ARGV[14] "1") a batch with it is being
--                                       submitted: wait, then look again
--   {"reserved", attempt, expires_ms}   held; attempt is new (HINCRBY, or 0 for
--                                       a first classifier call), unique for
--                                       the job across crashes and re-runs
--   {"wait", name, limit, spent, reserved}       does not fit only because of
--                                       other reservations (spent + estimate <=
--                                       limit everywhere): retry later
--   {"exhausted", name, limit, spent, reserved}  spent + estimate > limit on
--                                       budget name (the first such one from the
--                                       budget up): it will not fit this window
--   {"unknown", name}                   budget name (the job's or a parent) is
--                                       not in Redis
-- limit, spent and reserved are decimal strings (nano-USD) of the budget named.
-- An error reply for bad arguments, a chain longer than 4 or a cycle.
--
-- A repeated call with the same token while its lease lives returns the same
-- {"reserved", ...} and changes nothing; once that lease is gone (settled,
-- released or reaped) the token reserves anew.
--
-- Amounts are strings added with HINCRBY (exact int64). Lua compares doubles,
-- which is exact while every estimate and limit is at most MAX_NUSD (2^53 - 1
-- nano-USD, about $9.007M; worker/money.h says why).

-- MONEY_MAX_NUSD of worker/money.h, put in at build time (tests/tools/embed_lua.sh).
local MAX_NUSD = '@MONEY_MAX_NUSD_DIGITS@'

-- A nano-USD amount: a decimal integer without leading zeros, at most MAX_NUSD.
local function amount_ok(s)
  return (s == '0' or string.match(s, '^[1-9]%d*$') ~= nil)
     and (#s < #MAX_NUSD or (#s == #MAX_NUSD and s <= MAX_NUSD))
end

local base, day, month = ARGV[1], ARGV[2], ARGV[3]
local budget, job_id, est = ARGV[4], ARGV[5], ARGV[6]
local now, lease_ms, token = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]

if not amount_ok(est) then
  return redis.error_reply('reserve: estimate must be an integer of nano-USD in [0, ' .. MAX_NUSD .. ']')
end
if not now or not lease_ms or lease_ms <= 0 then
  return redis.error_reply('reserve: now and lease_ms must be numbers, lease_ms > 0')
end

-- The cost records of the job's billed attempts that did not answer (kept by
-- settle.lua as fields cost:<attempt>): a run that ended in a crash may have
-- charged them, and the job's next run publishes them with its own outputs
-- (SPEC §4: one record per billed call). Sent with the lookup's answers.
local function answer(t)
  if ARGV[14] == '1' then
    local costs, all = {}, redis.call('HGETALL', KEYS[1])
    for k = 1, #all, 2 do
      if string.sub(all[k], 1, 5) == 'cost:' then
        costs[#costs + 1] = all[k + 1]
      end
    end
    t[#t + 1] = costs
  end
  return t
end

if ARGV[14] == '1' then
  local f = redis.call('HMGET', KEYS[1], 'state', 'outputs')
  if f[1] == 'done' then
    return {'done', ''}
  elseif f[1] == 'pending' and f[2] then
    return {'pending', f[2]}
  elseif f[1] == 'batched' or f[1] == 'submitting' then
    return {f[1], ''}
  end
end

if token ~= '' then
  local prior = redis.call('HGET', KEYS[1], 'token:' .. token)
  if prior then
    local lease = redis.call('HMGET', base .. 'lease:' .. job_id .. ':' .. prior,
                             'state', 'expires_ms')
    if lease[1] == 'live' then
      return answer({'reserved', tonumber(prior), tonumber(lease[2])})
    end
  end
end

-- The chain, budget first.
local chain = {}
local cur = budget
while cur and cur ~= '' do
  for i = 1, #chain do
    if chain[i].name == cur then
      return redis.error_reply('reserve: budget chain of "' .. budget .. '" has a cycle at "' .. cur .. '"')
    end
  end
  if #chain == 4 then
    return redis.error_reply('reserve: budget chain of "' .. budget .. '" is longer than 4 budgets')
  end
  local m = redis.call('HMGET', base .. 'meta:' .. cur, 'limit_nusd', 'period', 'parent')
  if not m[1] then
    return answer({'unknown', cur})
  end
  local w = 'all'
  if m[2] == 'day' then w = day elseif m[2] == 'month' then w = month end
  chain[#chain + 1] = {name = cur, limit = m[1], window = w, key = base .. 'b:' .. cur .. ':' .. w}
  cur = m[3]
end

local e = tonumber(est)
local wait
for i = 1, #chain do
  local c = chain[i]
  local v = redis.call('HMGET', c.key, 'spent', 'reserved')
  local spent, reserved = v[1] or '0', v[2] or '0'
  local lim, s, r = tonumber(c.limit), tonumber(spent), tonumber(reserved)
  if s + e > lim then
    return answer({'exhausted', c.name, c.limit, spent, reserved})
  end
  if not wait and s + r + e > lim then
    wait = {'wait', c.name, c.limit, spent, reserved}
  end
end
if wait then
  return answer(wait)
end

for i = 1, #chain do
  redis.call('HINCRBY', chain[i].key, 'reserved', est)
end
local attempt
if ARGV[15] == '1' and redis.call('HSETNX', KEYS[1], 'attempts', 0) == 1 then
  attempt = 0
else
  attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
end
if token ~= '' then
  redis.call('HSET', KEYS[1], 'token:' .. token, attempt)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[13]))

local member = job_id .. ':' .. attempt
local expires = now + lease_ms
local lease = {'job_id', job_id, 'attempt', attempt, 'budget', budget, 'estimate', est,
               'model', ARGV[10], 'provider', ARGV[11], 'worker', ARGV[12], 'token', token,
               'expires_ms', expires, 'state', 'live', 'n', #chain}
for i = 1, #chain do
  lease[#lease + 1] = 'name' .. i
  lease[#lease + 1] = chain[i].name
  lease[#lease + 1] = 'window' .. i
  lease[#lease + 1] = chain[i].window
end
redis.call('HSET', base .. 'lease:' .. member, unpack(lease))
redis.call('ZADD', KEYS[2], expires, member)
return answer({'reserved', attempt, expires})
