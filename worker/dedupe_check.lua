-- dedupe_check: what is known of a batch of jobs before they are run.
--
-- KEYS[1..n] the jobs' dedupe hashes: {ledger}:job:<job>
--
-- Returns an array of n entries, one per key, each an array:
--   {"new", attempts, costs} run it; attempts already used (numbers to
--                          skip), and the cost records kept of its billed
--                          attempts that did not answer (settle.lua)
--   {"pending", outputs}   finished but not acknowledged: re-send outputs
--   {"done"}               its ok result was acknowledged: skip it
--   {"batched"}            a recorded provider batch holds it (SPEC §14):
--                          its collector answers it, skip this copy
--   {"submitting"}         a batch with it is being submitted: look again later
local out = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'state', 'outputs', 'attempts')
  if f[1] == 'done' then
    out[i] = {'done'}
  elseif f[1] == 'pending' and f[2] then
    out[i] = {'pending', f[2]}
  elseif f[1] == 'batched' or f[1] == 'submitting' then
    out[i] = {f[1]}
  else
    local costs, all = {}, redis.call('HGETALL', KEYS[i])
    for k = 1, #all, 2 do
      if string.sub(all[k], 1, 5) == 'cost:' then
        costs[#costs + 1] = all[k + 1]
      end
    end
    out[i] = {'new', tonumber(f[3] or '0'), costs}
  end
end
return out
