/*
 * router_bp_lua.h - the two Lua scripts cluster mode runs in Redis
 * (docs/cluster.md describes the keys). Included by router_bp.c only.
 *
 * Keys all carry the hash tag {PREFIX}, so they live in one slot and the
 * scripts also run on Redis Cluster. Numbers: ids stay below 2^53, so Lua's
 * doubles hold them exactly; '%.0f' prints them without an exponent.
 */
#ifndef SPOUT_ROUTER_BP_LUA_H
#define SPOUT_ROUTER_BP_LUA_H

/*
 * PUBLISH.  KEYS: seq, base, topics (zset), stream of the topic, and for an
 * HTTP publish with an idempotency key the key's record.
 * ARGV: floor, history (0 = no stream), channel, topic, event, data, ttl_ms,
 * and with KEYS[5] how long the record lives, in seconds.
 *
 * The counter is created on first use (or after Redis lost it) above both
 * the caller's floor (the highest id that node has seen) and Redis' clock
 * in microseconds, so ids never go backwards across a Redis restart; <base>
 * records where this epoch of the counter began, which tells a resuming
 * client whether its id is from before it. The stream entry carries <p>,
 * the previous id on the topic, so a replay can tell trimmed history from
 * no history. Returns {id, base}; or, when KEYS[5] already holds an id,
 * {that id, base, 1} and nothing is published (a retried POST).
 */
static const char bp_lua_publish[] =
	"if KEYS[5] then\n"
	"  local prev = redis.call('GET', KEYS[5])\n"
	"  if prev then return {prev, redis.call('GET', KEYS[2]) or '0', 1} end\n"
	"end\n"
	"local floor = tonumber(ARGV[1])\n"
	"local seq = redis.call('GET', KEYS[1])\n"
	"if not seq then\n"
	"  local t = redis.call('TIME')\n"
	"  local start = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"  if floor > start then start = floor end\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', start))\n"
	"  redis.call('SET', KEYS[2], string.format('%.0f', start + 1))\n"
	"elseif tonumber(seq) < floor then\n"
	"  redis.call('SET', KEYS[1], string.format('%.0f', floor))\n"
	"end\n"
	"local id = string.format('%.0f', redis.call('INCR', KEYS[1]))\n"
	"local base = redis.call('GET', KEYS[2]) or '0'\n"
	"if ARGV[2] ~= '0' then\n"
	"  local prev = redis.call('ZSCORE', KEYS[3], ARGV[4]) or '0'\n"
	"  redis.call('ZADD', KEYS[3], id, ARGV[4])\n"
	"  redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[2], id .. '-0',\n"
	"             'p', prev, 'e', ARGV[5], 'd', ARGV[6])\n"
	"  if ARGV[7] ~= '0' then redis.call('PEXPIRE', KEYS[4], ARGV[7]) end\n"
	"end\n"
	"redis.call('PUBLISH', ARGV[3], id .. ' ' .. base .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[6])\n"
	"if KEYS[5] then redis.call('SET', KEYS[5], id, 'EX', ARGV[8]) end\n"
	"return {id, base}\n";

/*
 * REPLAY.  KEYS: seq, base, topics (zset), then one stream per topic.
 * ARGV: after, count, list (1 = also list topics published after <after>,
 * for patterns), then the topic name of each stream.
 * Returns {seq, base, {name, last id, entries}..., [topic names]}; entries
 * are XRANGE's [id, [p, prev, e, event, d, data]].
 */
static const char bp_lua_replay[] =
	"local after = ARGV[1]\n"
	"local out = { redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or '0' }\n"
	"for i = 4, #KEYS do\n"
	"  local name = ARGV[i]\n"
	"  local e = redis.call('XRANGE', KEYS[i], '(' .. after .. '-0', '+', 'COUNT', ARGV[2])\n"
	"  local last = redis.call('ZSCORE', KEYS[3], name) or '0'\n"
	"  out[#out + 1] = { name, last, e }\n"
	"end\n"
	"if ARGV[3] == '1' then\n"
	"  out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. after, '+inf',\n"
	"                             'LIMIT', 0, 10000)\n"
	"end\n"
	"return out\n";

#endif
