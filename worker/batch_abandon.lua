-- batch_abandon: a submission that no provider batch holds (its submit was
-- refused, or the orphan search did not find it: SPEC §14) gives its
-- reservations back at zero and its jobs back to whoever runs them.
--
-- KEYS[1]  <base>bsub:<token>; KEYS[2] the lease index <base>leases
-- Keys derived: <base>job:<job_id>, <base>lease:<job_id>:<attempt>,
--          <base>settled:<job_id>:<attempt>, <base>b:<name>:<window>
-- ARGV[1]  base; ARGV[2] the settle marker's time to live, s
--
-- Only a submission "submitting" is abandoned (state "abandoned"; it stays
-- in <base>bsubs with its holder, who finishes it with batch_finish.lua).
-- Each live lease is released as release.lua does (reserved -= estimate,
-- marker "0 released"). Each job whose hash still names this submission
-- (next_sub): one never committed in Kafka forgets it (state, sub and
-- next_sub removed), so its Kafka copy runs it anew; a committed one goes
-- back to the submission it came from ("batched" under its sub, whose
-- collector runs it on).
--
-- Returns {"abandoned"}, or {state} of a submission not "submitting" (a
-- batch found and recorded meanwhile: it stands).
local base = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'n')
if f[1] ~= 'submitting' then
  return {f[1] or 'unknown'}
end
local token = f[2]
redis.call('HSET', KEYS[1], 'state', 'abandoned')
for i = 0, tonumber(f[3]) - 1 do
  local r = redis.call('HGET', KEYS[1], 'r:' .. i)
  local attempt, job = string.match(r or '', '^(%d+) (.*)$')
  if job then
    local member = job .. ':' .. attempt
    local lk = base .. 'lease:' .. member
    local l = redis.call('HMGET', lk, 'state', 'estimate', 'n', 'name1', 'window1', 'name2',
                         'window2', 'name3', 'window3', 'name4', 'window4')
    if l[1] == 'live' then
      for b = 1, tonumber(l[3]) do
        local key = base .. 'b:' .. l[2 + 2 * b] .. ':' .. l[3 + 2 * b]
        if tonumber(redis.call('HINCRBY', key, 'reserved', '-' .. l[2])) < 0 then
          redis.call('HSET', key, 'reserved', 0)
        end
      end
      redis.call('DEL', lk)
      redis.call('ZREM', KEYS[2], member)
      redis.call('SET', base .. 'settled:' .. member, '0 released', 'EX', tonumber(ARGV[2]))
    end
    local jk = base .. 'job:' .. job
    local j = redis.call('HMGET', jk, 'state', 'next_sub', 'committed')
    if j[1] == 'submitting' and j[2] == token then
      if j[3] == '1' then
        redis.call('HSET', jk, 'state', 'batched')
        redis.call('HDEL', jk, 'next_sub')
      else
        redis.call('HDEL', jk, 'state', 'sub', 'next_sub')
      end
    end
  end
end
return {'abandoned'}
