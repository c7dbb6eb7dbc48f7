-- budget_state: budgets and the spend of their current window, read-only.
--
-- KEYS[1]  the set of budget names: <base>budgets
-- Keys derived (same {ledger} hash tag): <base>meta:<name>, <base>b:<name>:<window>
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  the day window now, "YYYY-MM-DD"; ARGV[3] the month window, "YYYY-MM"
-- ARGV[4..] the budget names; none: every budget of KEYS[1], sorted by name
--
-- Returns an array, one entry per name:
--   {name, limit_nusd, period, parent, window, spent, reserved, since_ms}
-- (all strings; parent "" for none; window "all", ARGV[2] or ARGV[3] by
-- period; spent and reserved "0" for a window not written yet), or {name}
-- when no such budget is in Redis.
local base, day, month = ARGV[1], ARGV[2], ARGV[3]
local names = {}
for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
if #names == 0 then
  names = redis.call('SMEMBERS', KEYS[1])
  table.sort(names)
end
local out = {}
for i, name in ipairs(names) do
  local m = redis.call('HMGET', base .. 'meta:' .. name, 'limit_nusd', 'period', 'parent', 'since_ms')
  if not m[1] then
    out[i] = {name}
  else
    local w = 'all'
    if m[2] == 'day' then w = day elseif m[2] == 'month' then w = month end
    local v = redis.call('HMGET', base .. 'b:' .. name .. ':' .. w, 'spent', 'reserved')
    out[i] = {name, m[1], m[2] or 'none', m[3] or '', w, v[1] or '0', v[2] or '0', m[4] or '0'}
  end
end
return out
