-- ratelimit: take request and token credits from a provider's shared rpm/tpm
-- token buckets (SPEC §6), both or neither.
--
-- KEYS[1]  the provider's bucket hash ({health}:rl:<provider>): req_level,
--          req_ts, tok_level, tok_ts (levels may be fractional or, after a
--          request bigger than the burst, negative)
-- ARGV[1]  the period of the limits in ms (60000 for per-minute limits)
-- ARGV[2]  rpm: requests per period, 0 for unlimited
-- ARGV[3]  tpm: tokens per period, 0 for unlimited
-- ARGV[4]  requests needed now (the first waiting call: 1)
-- ARGV[5]  tokens needed now
-- ARGV[6]  requests wanted (needed plus a batch for the next calls)
-- ARGV[7]  tokens wanted
--
-- A bucket refills at limit/period per ms up to its burst, max(1,
-- floor(limit / 60)). The take succeeds when every limited bucket holds at
-- least min(needed, max(1, burst / 2)); each then gives max(needed,
-- min(wanted, level)), which may leave it in debt (at most needed - burst/2).
-- Taking at half a burst keeps a request as big as the burst from waiting
-- for a full bucket, where the refill would be capped and lost; the debt
-- keeps the long-run rate exact. Returns {requests, tokens, wait_ms}: what
-- was granted, or {0, 0, ms until the needed level will be there}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local limits = {req = tonumber(ARGV[2]), tok = tonumber(ARGV[3])}
local need = {req = tonumber(ARGV[4]), tok = tonumber(ARGV[5])}
local want = {req = tonumber(ARGV[6]), tok = tonumber(ARGV[7])}
local state = {}
local wait = 0
for _, k in ipairs({'req', 'tok'}) do
  local limit = limits[k]
  if limit > 0 then
    local burst = math.max(1, math.floor(limit / 60))
    local rate = limit / period
    local v = redis.call('HMGET', KEYS[1], k .. '_level', k .. '_ts')
    local level = tonumber(v[1]) or burst
    local ts = tonumber(v[2]) or now
    if now > ts then level = math.min(burst, level + (now - ts) * rate) end
    local floor = math.min(need[k], math.max(1, burst / 2))
    if level < floor then
      wait = math.max(wait, math.ceil((floor - level) / rate))
    end
    state[k] = {level = level, burst = burst}
  end
end
local granted = {req = 0, tok = 0}
for k, s in pairs(state) do
  if wait == 0 then
    local g = math.max(need[k], math.min(want[k], math.floor(s.level)))
    granted[k] = g
    s.level = s.level - g
  end
  redis.call('HSET', KEYS[1], k .. '_level', tostring(s.level), k .. '_ts', now)
end
redis.call('PEXPIRE', KEYS[1], 2 * period)
if wait > 0 then return {0, 0, wait} end
-- An unlimited dimension grants what was asked.
if limits.req == 0 then granted.req = want.req end
if limits.tok == 0 then granted.tok = want.tok end
return {granted.req, granted.tok, 0}
