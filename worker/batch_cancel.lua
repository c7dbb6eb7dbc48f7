-- batch_cancel: an operator asks for a batch in flight to be canceled
-- (`promptyard batches cancel ID`, SPEC §14). The batch's holder sees the
-- mark at its next renewal (batch_touch.lua returns 2), cancels the batch
-- at the provider and collects it as it would after a deadline's cancel:
-- what it answered is used, its other jobs run sync.
--
-- KEYS[1]  <base>batches (the batches in flight); KEYS[2] <base>batch:<id>
-- ARGV[1]  the batch id; ARGV[2] now, unix ms
--
-- Returns {"requested", state} (marked now), {"already", state} (marked
-- before), {"ended", state} (it left the batches in flight) or
-- {"unknown", ""} (no such batch).
local state = redis.call('HGET', KEYS[2], 'state')
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if state then
    return {'ended', state}
  end
  return {'unknown', ''}
end
if redis.call('HSETNX', KEYS[2], 'cancel_requested_ms', ARGV[2]) == 0 then
  return {'already', state or ''}
end
return {'requested', state or ''}
