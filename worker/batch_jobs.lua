-- batch_jobs: the requests of a submission and what is known of each job,
-- read by the worker that collects it (SPEC §14).
--
-- KEYS[1]  <base>bsub:<token> (see batch_prepare.lua)
-- Keys derived: <base>job:<job_id>
-- ARGV[1]  base
-- ARGV[2..] the requests asked, by index (custom_id "<token>-<i>"): the
--          collector reads a page at a time, never the whole submission
--
-- Returns an array with an entry per request asked, in the order asked (a
-- request the submission lacks gets the entry of one without a job):
--   {attempt, job_id, state, sub, outputs, src_value, src_key, src_headers,
--    src_topic, src_partition, src_offset, complete_by, next_sub, history}
-- state is the job hash's ("" when gone): "batched" with sub the submission
-- that holds the job now, "submitting" with next_sub the submission being
-- sent with it, "pending" (finished, not acknowledged: outputs holds them,
-- else ""), "done". Missing fields are "".
local base = ARGV[1]
local out = {}
for k = 2, #ARGV do
  local i = k - 1
  local r = redis.call('HGET', KEYS[1], 'r:' .. ARGV[k])
  local attempt, job = string.match(r or '', '^(%d+) (.*)$')
  if not job then
    out[i] = {'0', '', '', '', '', '', '', '', '', '', '', '', '', ''}
  else
    local f = redis.call('HMGET', base .. 'job:' .. job, 'state', 'sub', 'outputs',
                         'src_value', 'src_key', 'src_headers', 'src_topic',
                         'src_partition', 'src_offset', 'complete_by', 'next_sub', 'history')
    local outputs = ''
    if f[1] == 'pending' and f[3] then
      outputs = f[3]
    end
    out[i] = {attempt, job, f[1] or '', f[2] or '', outputs, f[4] or '', f[5] or '',
              f[6] or '', f[7] or '', f[8] or '', f[9] or '', f[10] or '', f[11] or '', f[12] or ''}
  end
end
return out
