-- health_view: every model's shared health in one reply, for the workers'
-- local views (SPEC §6). The result is cached for ARGV[3] ms, so N workers
-- refreshing every second cost Redis one computation per half second.
--
-- KEYS[1]     the view cache ({health}:view:<catalog>)
-- KEYS[2i]    model i's circuit hash ({health}:c:<model>), see health_flush.lua
-- KEYS[2i+1]  model i's window hash ({health}:w:<model>)
-- ARGV[1]     the window in ms
-- ARGV[2]     the number of slots in the ring
-- ARGV[3]     how long the computed view is cached, in ms (0: not cached)
--
-- Returns {now, view}: now is Redis' clock in ms; view a JSON array with,
-- per model in KEYS order, [median_bin, ok, fail, tokens, consec,
-- open_until, probe_until] (median_bin -1 without latency samples; times in
-- Redis ms, 0 for none).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cached = redis.call('GET', KEYS[1])
if cached then return {now, cached} end
local window = tonumber(ARGV[1])
local slots = tonumber(ARGV[2])
local slot_ms = math.max(1, math.floor(window / slots))
local current = math.floor(now / slot_ms)
local out = {}
local n = (#KEYS - 1) / 2
for i = 1, n do
  local st = redis.call('HMGET', KEYS[2 * i], 'consec', 'open_until', 'probe_until')
  local ok, fail, tok, total = 0, 0, 0, 0
  local counts = {}
  local fields = redis.call('HGETALL', KEYS[2 * i + 1])
  local h = {}
  for j = 1, #fields, 2 do h[fields[j]] = fields[j + 1] end
  for p = 0, slots - 1 do
    local id = tonumber(h[p .. ':id'])
    if id and id > current - slots and id <= current then
      ok = ok + (tonumber(h[p .. ':ok']) or 0)
      fail = fail + (tonumber(h[p .. ':fail']) or 0)
      tok = tok + (tonumber(h[p .. ':tok']) or 0)
      for b, k in string.gmatch(h[p .. ':h'] or '', '(%d+):(%d+)') do
        b = tonumber(b)
        k = tonumber(k)
        counts[b] = (counts[b] or 0) + k
        total = total + k
      end
    end
  end
  local median = -1
  if total > 0 then
    local bins = {}
    for b in pairs(counts) do bins[#bins + 1] = b end
    table.sort(bins)
    local half, seen = math.floor((total + 1) / 2), 0
    for _, b in ipairs(bins) do
      seen = seen + counts[b]
      if seen >= half then median = b break end
    end
  end
  out[i] = {median, ok, fail, tok, tonumber(st[1]) or 0, tonumber(st[2]) or 0,
            tonumber(st[3]) or 0}
end
local view = cjson.encode(out)
local cache_ms = tonumber(ARGV[3])
if cache_ms > 0 then redis.call('SET', KEYS[1], view, 'PX', cache_ms) end
return {now, view}
