-- batch_prepare: a submission about to be sent to a provider (SPEC §14), the
-- step before its HTTP call: after it, a crash leaves a trace that the orphan
-- search (batch_claim.lua, then batch_record.lua or batch_abandon.lua)
-- resolves, and no job of it can enter a second live batch.
--
-- KEYS[1]  the submission: <base>bsub:<token> (hash, below)
-- KEYS[2]  the submissions due for a worker's attention: <base>bsubs (sorted
--          set, member the token, score unix ms: when a worker must look at
--          it next; see batch_claim.lua)
-- Keys derived (same {ledger} hash tag): <base>job:<job_id> (the job's dedupe
--          hash), <base>lease:<job_id>:<attempt> (the attempt's reservation)
-- ARGV[1]  base: "<prefix>{ledger}:"
-- ARGV[2]  token (12 of [a-z0-9]); ARGV[3] provider; ARGV[4] model (names)
-- ARGV[5]  the worker submitting it; ARGV[6] now, unix ms
-- ARGV[7]  unix ms after which the submission, still "submitting", counts as
--          orphaned: its worker is taken for dead and any worker may search
--          the provider for it
-- ARGV[8]  the earliest complete_by of its jobs, unix ms
-- ARGV[9]  the dedupe hash's time to live, s (worker.dedupe_ttl_s)
-- ARGV[10] n, the requests; then 11 arguments per request i (0 .. n-1), in
--          the submission's order (custom_id "<token>-<i>"):
--          job_id, attempt, has_src ("1": the next seven are the job's
--          source, kept so that any worker can run it again without Kafka;
--          "0": the job hash has them already), value, key, headers,
--          topic, partition, offset, complete_by (unix ms), history (the
--          job's attempts before this one, for its result: the worker's
--          text, kept as field "history")
--
-- Writes the submission hash: state "submitting", token, provider, model,
-- worker, created_ms, complete_by, n, collector (the worker that holds it),
-- and r:<i> = "<attempt> <job_id>" per request; each job hash: state
-- "submitting", next_sub <token>, complete_by, and with has_src (a job from
-- Kafka) sub <token> and the src_* fields (src_value, src_key, src_headers,
-- src_topic, src_partition, src_offset). A job taken over from an earlier
-- submission keeps that one as sub (and its "committed": its offset was
-- committed, no Kafka copy will run it again) until this one is recorded.
-- Each live lease gets sub <token>: reap.lua leaves it alone while its
-- submission is "submitting".
--
-- Returns the submission's state: "submitting" (new, or a repeat).
local base, token = ARGV[1], ARGV[2]
local existing = redis.call('HGET', KEYS[1], 'state')
if existing then
  return existing
end
local n = tonumber(ARGV[10])
redis.call('HSET', KEYS[1], 'state', 'submitting', 'token', token, 'provider', ARGV[3],
           'model', ARGV[4], 'worker', ARGV[5], 'created_ms', ARGV[6],
           'complete_by', ARGV[8], 'n', n, 'collector', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[7], token)
local ttl = tonumber(ARGV[9])
for i = 0, n - 1 do
  local o = 10 + i * 11
  local job, attempt = ARGV[o + 1], ARGV[o + 2]
  redis.call('HSET', KEYS[1], 'r:' .. i, attempt .. ' ' .. job)
  local jk = base .. 'job:' .. job
  redis.call('HSET', jk, 'state', 'submitting', 'next_sub', token, 'complete_by', ARGV[o + 10],
             'history', ARGV[o + 11])
  if ARGV[o + 3] == '1' then
    redis.call('HSET', jk, 'sub', token, 'src_value', ARGV[o + 4], 'src_key', ARGV[o + 5],
               'src_headers', ARGV[o + 6], 'src_topic', ARGV[o + 7],
               'src_partition', ARGV[o + 8], 'src_offset', ARGV[o + 9])
  end
  redis.call('EXPIRE', jk, ttl)
  local lk = base .. 'lease:' .. job .. ':' .. attempt
  if redis.call('HGET', lk, 'state') == 'live' then
    redis.call('HSET', lk, 'sub', token)
  end
end
return 'submitting'
