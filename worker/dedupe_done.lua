-- dedupe_done: mark jobs whose ok result Kafka acknowledged; their stored
-- outputs are dropped and redelivered copies are skipped from now on.
--
-- KEYS[1..n] the jobs' dedupe hashes: {ledger}:job:<job>
-- ARGV[1]    time to live in seconds (worker.dedupe_ttl_s)
--
-- Returns the number of jobs marked.
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'state', 'done')
  redis.call('HDEL', KEYS[i], 'outputs')
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1]))
end
return #KEYS
