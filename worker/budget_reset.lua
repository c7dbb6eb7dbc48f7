-- budget_reset: start a budget's current window again (`promptyard budget reset`).
--
-- KEYS[1]  the set of budget names: <base>budgets
-- Keys derived (same {ledger} hash tag): <base>meta:<name>, <base>b:<name>:<window>
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  the day window now, "YYYY-MM-DD"; ARGV[3] the month window, "YYYY-MM"
-- ARGV[4]  now, unix ms
-- ARGV[5]  the budget name
--
-- Sets spent of the current window to zero and adds what it held to the
-- field reset_nusd of that window, so that spent + reset_nusd still equals
-- the sum of the window's cost records. reserved is kept: the reservations
-- outstanding settle, release or are reaped later and subtract their own
-- estimates. A budget of period none also gets since_ms = now (the start of
-- its window "all"). Parents are not touched.
--
-- Returns {"reset", window, old spent} or {"unknown", name}.
local base, day, month, now, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local meta = base .. 'meta:' .. name
local period = redis.call('HGET', meta, 'period')
if not period then
  return {'unknown', name}
end
local w = 'all'
if period == 'day' then w = day elseif period == 'month' then w = month end
local key = base .. 'b:' .. name .. ':' .. w
local old = redis.call('HGET', key, 'spent') or '0'
redis.call('HSET', key, 'spent', 0)
redis.call('HINCRBY', key, 'reset_nusd', old)
if period == 'none' then
  redis.call('HSET', meta, 'since_ms', now)
end
return {'reset', w, old}
