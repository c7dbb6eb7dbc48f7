-- settle: charge the actual cost of one attempt, once; and, for the attempt
-- that answered, keep the job's finished outputs until Kafka has them (SPEC §9:
-- a result finished but not acknowledged is re-sent, not re-bought).
--
-- KEYS[1]  the settle marker of (job_id, attempt): <base>settled:<job_id>:<attempt>
--          (a string "<nano-USD charged>" or "<nano-USD> estimated" when a reap
--          charged it, or "0 released"; with a time to live)
-- KEYS[2]  the job's dedupe hash: <base>job:<job_id> (fields attempts, state, outputs)
-- KEYS[3]  the lease index: <base>leases
-- KEYS[4]  the attempt's lease: <base>lease:<job_id>:<attempt> (see reserve.lua)
-- Keys derived (same {ledger} hash tag): <base>b:<name>:<window> (spent,
--          reserved) and, without a lease, <base>meta:<name>
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  the day window now, "YYYY-MM-DD"; ARGV[3] the month window, "YYYY-MM"
-- ARGV[4]  the budget name (used only when the attempt has no lease)
-- ARGV[5]  the actual cost in nano-USD (a non-negative integer, at most
--          MAX_NUSD: 2^53 - 1, worker/money.h's MONEY_MAX_NUSD, the most
--          money_cost_nusd() returns)
-- ARGV[6]  the settle marker's time to live in seconds
-- ARGV[7]  the attempt number
-- ARGV[8]  the dedupe hash's time to live in seconds (worker.dedupe_ttl_s)
-- ARGV[9]  the job's outputs, one JSON per line (result first), or "" while
--          the job goes on
-- ARGV[13] the cost record (JSON) of a billed attempt that did not answer,
--          kept in the job hash as cost:<attempt> until the job's outputs
--          are out; "" for none
-- ARGV[10], ARGV[11]  the model and provider of an attempt without a lease,
--          for the stats ("" when unknown); ARGV[12] the stats hash's time to
--          live, s (see the stats block below)
--
-- The first of settle, release and reap to reach an attempt decides it; the
-- marker makes every later one a repeat that changes no counter:
--   lease live:  on the budget windows recorded in the lease, spent += actual
--                and reserved -= the lease's estimate (read from the lease, so
--                it is subtracted once); the lease is removed.
--   no lease, no marker: an attempt that reserved nothing (a caller without
--                reservations): spent += actual on
--                the chain walked from the meta hashes, in the windows of now
--                (an empty budget name charges no budget: a job that has none).
--   marker:      a repeat. After a reap (the lease expired) the attempt stays
--                charged at its estimate and the late actual cost is NOT added:
--                the reap published the attempt's cost record with cost_nusd =
--                estimate, and SPEC §4's invariant (spent = sum of cost_nusd
--                over distinct (job_id, attempt) records) can hold for that
--                (job_id, attempt) only if spent carries exactly the estimate.
--                Any top-up would need a second, different record for the same
--                key. The estimate is an upper bound by construction (§6), so
--                the attempt is not under-counted. The caller reports the
--                attempt at the amount returned, with "estimated": true, or
--                publishes nothing more for it.
--
-- Returns {status, nano-USD, how}: status "charged" (now) or "repeat"; the
-- amount charged to this attempt, now or before (a decimal string); how
-- "settled", "reaped" (charged at its estimate) or "released" (never called:
-- nothing charged). An error reply for bad arguments, an unknown budget or a
-- budget chain longer than 4 or with a cycle (walked only without a lease).
-- Reserved never goes below zero.

-- MONEY_MAX_NUSD of worker/money.h, put in at build time (tests/tools/embed_lua.sh).
local MAX_NUSD = '@MONEY_MAX_NUSD_DIGITS@'

-- A nano-USD amount: a decimal integer without leading zeros, at most MAX_NUSD.
local function amount_ok(s)
  return (s == '0' or string.match(s, '^[1-9]%d*$') ~= nil)
     and (#s < #MAX_NUSD or (#s == #MAX_NUSD and s <= MAX_NUSD))
end

local base, day, month, budget = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cost = ARGV[5]
if not amount_ok(cost) then
  return redis.error_reply('settle: cost must be an integer of nano-USD in [0, ' .. MAX_NUSD .. ']')
end

local function unreserve(key, est)
  if tonumber(redis.call('HINCRBY', key, 'reserved', '-' .. est)) < 0 then
    redis.call('HSET', key, 'reserved', 0)
  end
end

local status, amount, how
local leased = false
local who -- the lease's {provider, model}, read before it goes: for the stats
local marker = redis.call('GET', KEYS[1])
if marker then
  status, amount, how = 'repeat', string.match(marker, '^%d+') or '0', 'settled'
  if string.find(marker, 'estimated', 1, true) then
    how = 'reaped'
  elseif string.find(marker, 'released', 1, true) then
    how = 'released'
  end
else
  -- One read for the lease and its chain (at most 4 budgets).
  local lease = redis.call('HMGET', KEYS[4], 'state', 'estimate', 'n', 'name1', 'window1',
                           'name2', 'window2', 'name3', 'window3', 'name4', 'window4')
  if lease[1] == 'reaped' then
    -- Reaped, and its marker expired since: still a repeat.
    status, amount, how = 'repeat', lease[2], 'reaped'
  elseif lease[1] == 'live' then
    leased = true
    who = redis.call('HMGET', KEYS[4], 'provider', 'model')
    for i = 1, tonumber(lease[3]) do
      local key = base .. 'b:' .. lease[2 + 2 * i] .. ':' .. lease[3 + 2 * i]
      redis.call('HINCRBY', key, 'spent', cost)
      unreserve(key, lease[2])
    end
    redis.call('DEL', KEYS[4])
    redis.call('ZREM', KEYS[3], string.sub(KEYS[4], #base + 7))
    status, amount, how = 'charged', cost, 'settled'
  else
    local keys, seen, cur = {}, {}, budget
    while cur and cur ~= '' do
      if seen[cur] then
        return redis.error_reply('settle: budget chain of "' .. budget .. '" has a cycle at "' .. cur .. '"')
      end
      if #keys == 4 then
        return redis.error_reply('settle: budget chain of "' .. budget .. '" is longer than 4 budgets')
      end
      seen[cur] = true
      local m = redis.call('HMGET', base .. 'meta:' .. cur, 'period', 'parent')
      if not m[1] then
        return redis.error_reply('settle: unknown budget "' .. cur .. '"')
      end
      local w = 'all'
      if m[1] == 'day' then w = day elseif m[1] == 'month' then w = month end
      keys[#keys + 1] = base .. 'b:' .. cur .. ':' .. w
      cur = m[2]
    end
    for i = 1, #keys do
      redis.call('HINCRBY', keys[i], 'spent', cost)
    end
    status, amount, how = 'charged', cost, 'settled'
  end
  if status == 'charged' then
    redis.call('SET', KEYS[1], cost, 'EX', tonumber(ARGV[6]))
  end
end

-- The job hash: reserve handed out this attempt number and set the time to
-- live already; an attempt without a lease records its number here.
if not leased then
  local attempt = tonumber(ARGV[7])
  local used = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
  if attempt > used then
    redis.call('HSET', KEYS[2], 'attempts', attempt)
  end
end
if ARGV[9] ~= '' and redis.call('HGET', KEYS[2], 'state') ~= 'done' then
  redis.call('HSET', KEYS[2], 'state', 'pending', 'outputs', ARGV[9])
end
-- A billed attempt that did not answer keeps its cost record (ARGV[13]) in
-- the job hash, so that the job's next run publishes it should this one
-- die before the job's outputs are out (reserve.lua hands them over).
if status == 'charged' and ARGV[13] and ARGV[13] ~= '' then
  redis.call('HSET', KEYS[2], 'cost:' .. ARGV[7], ARGV[13])
end
if ARGV[9] ~= '' or not leased or (ARGV[13] and ARGV[13] ~= '') then
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
end

-- Stats (the dashboard, SPEC §15): an attempt charged now is one call of its
-- model, and its cost is that model's spend, in the day of now (ARGV[2]):
-- hash <base>stats:d:<day>, fields spend:<provider>:<model> (nano-USD) and
-- calls:<provider>:<model>. A repeat adds nothing. A model's first call of
-- the day sets the hash's time to live (ARGV[12] s): one EXPIRE per model
-- and day, not one per call.
if status == 'charged' then
  local provider, model = ARGV[11], ARGV[10]
  if who then provider, model = who[1] or '', who[2] or '' end
  local key, pm = base .. 'stats:d:' .. day, provider .. ':' .. model
  redis.call('HINCRBY', key, 'spend:' .. pm, cost)
  if redis.call('HINCRBY', key, 'calls:' .. pm, 1) == 1 then
    redis.call('EXPIRE', key, tonumber(ARGV[12]))
  end
end
return {status, amount, how}
