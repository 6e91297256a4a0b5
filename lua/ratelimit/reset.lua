-- Reset: forgets every rule's state of one rate-limit key (the next call starts with full limits).
-- KEYS[1] state (string): the key's rule states
-- ARGV: none
-- Reply: number
return redis.call('DEL', KEYS[1])
