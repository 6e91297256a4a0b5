-- eventlog-dedupe: the idempotency record of an append, for lua/eventlog/append.lua (inside the block of a call with
-- an idempotency key), append-batch.lua and append-keyed.lua, and for el_add (lua/_lib/eventlog-append.lua), which
-- needs it included first.

-- The idempotency record of a key: "<first id> <payload digest>" (a record without a digest holds the id only).
-- Returns nil when the key is unused, else the first id and 1 (same payload, or no digest to compare) or 2 (the key
-- was used with another payload).
local function el_dedupe(dedupe, digest)
  local rec = redis.call('GET', dedupe)
  if not rec then return nil end
  local sp = string.find(rec, ' ', 1, true)
  if not sp then return rec, 1 end
  local first = string.sub(rec, 1, sp - 1)
  if digest ~= '' and string.sub(rec, sp + 1) ~= digest then return first, 2 end
  return first, 1
end
