-- reap_ack: forget a reaped lease once its cost record is acknowledged.
--
-- KEYS[1]  the lease index: <base>leases
-- KEYS[2]  the lease: <base>lease:<job_id>:<attempt>
-- ARGV[1]  the index member, "<job_id>:<attempt>"
--
-- Only a lease that a reap charged is removed; a live one is left alone.
-- Returns 1 when removed, 0 otherwise (already removed, or not reaped).
if redis.call('HGET', KEYS[2], 'state') ~= 'reaped' then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
