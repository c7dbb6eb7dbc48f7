-- release: give back the reservation of an attempt that never reached the
-- provider (nothing was billed), once.
--
-- KEYS[1]  the settle marker of (job_id, attempt): <base>settled:<job_id>:<attempt>
-- KEYS[2]  the lease index: <base>leases
-- KEYS[3]  the attempt's lease: <base>lease:<job_id>:<attempt> (see reserve.lua)
-- Keys derived (same {ledger} hash tag): <base>b:<name>:<window>, the windows
--          recorded in the lease
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  the settle marker's time to live in seconds
--
-- A live lease: reserved -= its estimate on every window it holds (never
-- below zero), the lease is removed, and the marker "0 released" is written
-- so that a later settle or reap of this attempt is a repeat that charges
-- nothing. Anything else (no lease, or a lease a reap already charged) is
-- left alone.
--
-- Returns 1 when released now, 0 when there was nothing to release.
local base = ARGV[1]
local lease = redis.call('HMGET', KEYS[3], 'state', 'estimate', 'n', 'name1', 'window1',
                         'name2', 'window2', 'name3', 'window3', 'name4', 'window4')
if lease[1] ~= 'live' then
  return 0
end
for i = 1, tonumber(lease[3]) do
  local key = base .. 'b:' .. lease[2 + 2 * i] .. ':' .. lease[3 + 2 * i]
  if tonumber(redis.call('HINCRBY', key, 'reserved', '-' .. lease[2])) < 0 then
    redis.call('HSET', key, 'reserved', 0)
  end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], string.sub(KEYS[3], #base + 7))
redis.call('SET', KEYS[1], '0 released', 'EX', tonumber(ARGV[2]))
return 1
