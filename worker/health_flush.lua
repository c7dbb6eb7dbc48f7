-- health_flush: add one worker's batch of call outcomes to the shared model
-- health (SPEC §6): the sliding window of outcomes and latencies, and the
-- circuit breaker.
--
-- KEYS[1]        the view cache ({health}:view:<catalog>), deleted when a
--                circuit changes so that every worker sees it at its next refresh
-- KEYS[2i]       model i's circuit hash ({health}:c:<model>): consec,
--                open_until, probe_until, probe_owner (Redis ms)
-- KEYS[2i+1]     model i's window hash ({health}:w:<model>): a ring of ARGV[2]
--                slots, fields <pos>:id (the slot number), <pos>:ok,
--                <pos>:fail, <pos>:tok, <pos>:h ("bin:count bin:count ...")
-- ARGV[1]        the window in ms (router.window_s x 1000)
-- ARGV[2]        the number of slots in the ring
-- ARGV[3]        router.breaker_failures
-- ARGV[4]        router.breaker_cooldown_ms
-- ARGV[5+7(i-1)..] for model i, seven values:
--                ok        successes in the batch
--                fail      failures in the batch
--                trail     failures after the batch's last success (all of
--                          them when ok is 0)
--                probe     0, or the outcome of this worker's probe: 1
--                          success (closes), 2 failure (reopens), 3 no
--                          verdict (the probe is given back: another may go)
--                force     1 to open the circuit now (a 401/403), else 0
--                tokens    tokens used
--                hist      latency histogram of the successes, "bin:count ..."
--
-- Returns the number of circuits that changed state. Time is Redis' clock
-- (TIME), so workers' clocks need not agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local slots = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local cooldown = tonumber(ARGV[4])
local slot_ms = math.max(1, math.floor(window / slots))
local slot = math.floor(now / slot_ms)
local pos = tostring(slot % slots)
local changed = 0
local n = (#KEYS - 1) / 2
for i = 1, n do
  local c, w = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 5 + 7 * (i - 1)
  local ok, fail, trail = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local probe, force, tok, hist = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]),
                                  tonumber(ARGV[a + 5]), ARGV[a + 6]

  -- The breaker.
  local st = redis.call('HMGET', c, 'consec', 'open_until', 'probe_until')
  local consec = tonumber(st[1]) or 0
  local open_until = tonumber(st[2]) or 0
  local probe_until = tonumber(st[3]) or 0
  if ok > 0 then consec = trail else consec = consec + fail end
  local was_open = open_until > 0
  if probe == 1 then
    open_until, probe_until, consec = 0, 0, 0
  elseif probe == 2 or force == 1 then
    open_until, probe_until = now + cooldown, 0
    if consec < threshold then consec = threshold end
  else
    -- 3: a probe given back.
    if probe == 3 then probe_until = 0 end
    if open_until == 0 and consec >= threshold then
      open_until, probe_until = now + cooldown, 0
    end
  end
  if was_open ~= (open_until > 0) or probe == 2 or force == 1 then changed = changed + 1 end
  redis.call('HSET', c, 'consec', consec, 'open_until', open_until, 'probe_until', probe_until)
  redis.call('PEXPIRE', c, 2 * (window + cooldown) + 3600000)

  -- The window: reset the ring position when it holds an older slot.
  if tonumber(redis.call('HGET', w, pos .. ':id')) ~= slot then
    redis.call('HSET', w, pos .. ':id', slot, pos .. ':ok', 0, pos .. ':fail', 0,
               pos .. ':tok', 0, pos .. ':h', '')
  end
  if ok > 0 then redis.call('HINCRBY', w, pos .. ':ok', ok) end
  if fail > 0 then redis.call('HINCRBY', w, pos .. ':fail', fail) end
  if tok > 0 then redis.call('HINCRBY', w, pos .. ':tok', tok) end
  if hist ~= '' then
    local counts = {}
    local old = redis.call('HGET', w, pos .. ':h') or ''
    for b, k in string.gmatch(old .. ' ' .. hist, '(%d+):(%d+)') do
      b = tonumber(b)
      counts[b] = (counts[b] or 0) + tonumber(k)
    end
    local parts = {}
    for b, k in pairs(counts) do parts[#parts + 1] = b .. ':' .. k end
    redis.call('HSET', w, pos .. ':h', table.concat(parts, ' '))
  end
  redis.call('PEXPIRE', w, 2 * window + slot_ms)
end
if changed > 0 then redis.call('DEL', KEYS[1]) end
return changed
