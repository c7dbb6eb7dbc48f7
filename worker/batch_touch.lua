-- batch_touch: the holder of a submission renews its lease and reports the
-- batch's progress (SPEC §14; the dashboard reads <base>batch:<id>).
--
-- KEYS[1]  <base>bsub:<token>; KEYS[2] <base>bsubs
-- KEYS[3]  <base>batch:<batch_id> (the dashboard's hash; may not exist)
-- ARGV[1]  token; ARGV[2] the worker; ARGV[3] unix ms of the next look
-- ARGV[4]  the batch's state as the provider last said ("" to leave it)
-- ARGV[5], ARGV[6]  requests done, requests failed (with a state)
--
-- Only the submission's collector renews: a worker whose lease passed and
-- whose submission another worker claimed meanwhile gets 0 and lets it go.
-- Returns 1 renewed, 0 not the holder (or no such submission).
local f = redis.call('HMGET', KEYS[1], 'collector', 'state')
if f[1] ~= ARGV[2] or (f[2] ~= 'recorded' and f[2] ~= 'submitting' and f[2] ~= 'abandoned') then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', ARGV[4], 'requests_done', ARGV[5],
             'requests_failed', ARGV[6])
end
return 1
