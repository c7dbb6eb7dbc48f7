-- health_probe: claim the one probe call of a model whose circuit has cooled
-- down (SPEC §6), atomically across all workers.
--
-- KEYS[1]  the model's circuit hash ({health}:c:<model>), see health_flush.lua
-- KEYS[2]  the view cache ({health}:view:<catalog>), deleted on a claim
-- ARGV[1]  the claiming worker's name (kept as probe_owner, for operators)
-- ARGV[2]  the claim's lease in ms: another probe may be claimed once it
--          passes without an outcome (the prober died or never called)
--
-- Returns 1 when this caller holds the probe now, 0 when the circuit is
-- still cooling down or another caller holds the probe, 2 when the circuit
-- is closed (no probe needed: call normally).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until = tonumber(st[1]) or 0
local probe_until = tonumber(st[2]) or 0
if open_until == 0 then return 2 end
if now < open_until or probe_until > now then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]), 'probe_owner', ARGV[1])
redis.call('DEL', KEYS[2])
return 1
