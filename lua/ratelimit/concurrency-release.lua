-- ConcurrencyRelease: frees the slot of one permit; 1 when it was still live, 0 when it had expired or was released.
-- KEYS[1] permits (zset): permit token -> expiry (server ms)
-- ARGV[1] token (string): the permit's token
-- Reply: number
--@include now-ms
--@include permits
return pm_release(KEYS[1], ARGV[1])
