-- stats_jobs: count finished jobs by status and error code in the fleet's
-- stats (the dashboard, SPEC §15), once per loop turn of a worker.
--
-- KEYS[1]  the day's stats hash: <base>stats:d:<YYYY-MM-DD>
-- ARGV[1]  its time to live, s
-- ARGV[2..] pairs: a field ("jobs:ok" or "jobs:error:<code>") and how many
--          jobs to add to it (a positive integer)
--
-- The same hash holds spend:<provider>:<model> and calls:<provider>:<model>
-- (settle.lua, reap.lua). Returns the number of fields changed.
local n = 0
for i = 2, #ARGV - 1, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  n = n + 1
end
if n > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return n
