-- dedupe_done: mark jobs whose ok result Kafka acknowledged; their stored
-- outputs and kept cost records are dropped and redelivered copies are
-- skipped from now on.
--
-- KEYS[1..n] the jobs' dedupe hashes: {ledger}:job:<job>
-- ARGV[1]    time to live in seconds (worker.dedupe_ttl_s)
--
-- Returns the number of jobs marked.
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'state', 'done')
  redis.call('HDEL', KEYS[i], 'outputs')
  -- The kept cost records went out with the result.
  local all = redis.call('HKEYS', KEYS[i])
  for k = 1, #all do
    if string.sub(all[k], 1, 5) == 'cost:' then
      redis.call('HDEL', KEYS[i], all[k])
    end
  end
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1]))
end
return #KEYS
