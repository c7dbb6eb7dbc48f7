-- budget_sync: write budget definitions (limit, period, parent), never their
-- spend. The worker writes its config's budgets when it starts (SPEC §7);
-- `promptyard budget set` writes one.
--
-- KEYS[1]  the set of budget names: <base>budgets
-- Keys derived (same {ledger} hash tag): <base>meta:<name>, a hash with
--          limit_nusd, period (none|day|month), parent (a name, "" for none)
--          and since_ms (when the budget was created or, for period none, last
--          reset: the start of its window "all")
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  now, unix ms
-- ARGV[3..] five per budget: name, fields, limit_nusd, period, parent.
--          fields says which of the three values to write: "l" limit, "p"
--          period, "a" parent; the others keep their value in Redis (a new
--          budget: period none, no parent; its limit is required). With "c"
--          a budget that exists already is left untouched (create only).
--
-- All budgets are checked before anything is written: limit a decimal
-- integer of at most MAX_NUSD (2^53 - 1: the most reserve.lua compares
-- exactly; worker/money.h's MONEY_MAX_NUSD), period known, parent an existing budget (in
-- Redis or in this call), and every budget's chain, after the change, at most
-- 4 budgets long and without a cycle. Spend hashes (<base>b:...) are never
-- touched.
--
-- Returns {"ok", created, updated} (counts), {"unknown", name} when a parent
-- names no budget, or {"invalid", message}.

-- MONEY_MAX_NUSD of worker/money.h, put in at build time (tests/tools/embed_lua.sh).
local MAX_NUSD = '@MONEY_MAX_NUSD_DIGITS@'

-- A nano-USD amount: a decimal integer without leading zeros, at most MAX_NUSD.
local function amount_ok(s)
  return (s == '0' or string.match(s, '^[1-9]%d*$') ~= nil)
     and (#s < #MAX_NUSD or (#s == #MAX_NUSD and s <= MAX_NUSD))
end

local base, now = ARGV[1], ARGV[2]
local batch, order = {}, {}
for i = 3, #ARGV, 5 do
  local name, fields, limit, period, parent = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if not parent then
    return redis.error_reply('budget_sync: five arguments per budget')
  end
  if name == '' then
    return {'invalid', 'a budget name must not be empty'}
  end
  local cur = redis.call('HMGET', base .. 'meta:' .. name, 'limit_nusd', 'period', 'parent')
  local exists = cur[1] ~= false
  if not (exists and string.find(fields, 'c', 1, true)) then
    local m = {limit = cur[1], period = cur[2] or 'none', parent = cur[3] or '', new = not exists}
    if string.find(fields, 'l', 1, true) then m.limit = limit end
    if string.find(fields, 'p', 1, true) then m.period = period end
    if string.find(fields, 'a', 1, true) then m.parent = parent end
    if not m.limit then
      return {'invalid', 'budget "' .. name .. '": a new budget needs a limit'}
    end
    if not amount_ok(m.limit) then
      return {'invalid', 'budget "' .. name .. '": limit must be an integer of nano-USD from 0 to ' .. MAX_NUSD}
    end
    if m.period ~= 'none' and m.period ~= 'day' and m.period ~= 'month' then
      return {'invalid', 'budget "' .. name .. '": period must be none, day or month'}
    end
    if m.parent == name then
      return {'invalid', 'budget "' .. name .. '" cannot be its own parent'}
    end
    if not batch[name] then order[#order + 1] = name end
    batch[name] = m
  end
end

local function parent_of(name)
  if batch[name] then return batch[name].parent end
  local m = redis.call('HMGET', base .. 'meta:' .. name, 'limit_nusd', 'parent')
  if not m[1] then return nil end
  return m[2] or ''
end

local names = redis.call('SMEMBERS', KEYS[1])
for _, n in ipairs(order) do names[#names + 1] = n end
for _, name in ipairs(names) do
  local seen, cur, len = {}, name, 0
  if parent_of(name) == nil then
    cur = '' -- listed but without a meta hash (removed by hand): nothing to check
  end
  while cur ~= '' do
    if seen[cur] then
      return {'invalid', 'budget chain of "' .. name .. '" has a cycle at "' .. cur .. '"'}
    end
    seen[cur] = true
    len = len + 1
    if len > 4 then
      return {'invalid', 'budget chain of "' .. name .. '" is longer than 4 budgets'}
    end
    local p = parent_of(cur)
    if p == nil then
      return {'unknown', cur}
    end
    cur = p
  end
end

local created, updated = 0, 0
for _, name in ipairs(order) do
  local m = batch[name]
  local key = base .. 'meta:' .. name
  redis.call('HSET', key, 'limit_nusd', m.limit, 'period', m.period, 'parent', m.parent)
  redis.call('HSETNX', key, 'since_ms', now)
  redis.call('SADD', KEYS[1], name)
  if m.new then created = created + 1 else updated = updated + 1 end
end
return {'ok', created, updated}
