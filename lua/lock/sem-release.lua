-- Semaphore release: remove one permit if it is still held and unexpired (Redis server time).
-- KEYS[1] holders (zset): token -> expiry in server ms
-- ARGV[1] token (string): the permit's token
-- Reply: number
--@include now-ms
--@include permits
return pm_release(KEYS[1], ARGV[1])
