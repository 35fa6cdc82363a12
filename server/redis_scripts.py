"""Sessions shared through Redis: any number of workers and hosts form one service.

Keys (all under `-redis-prefix`, so deployments can share one Redis):

    P:s:<id>      hash: the session record (v sip sct rct c ls j fi done sn rn sh)
    P:born        zset id -> created (the global count, the max-age check)
    P:seen        zset id -> last activity (the idle check)
    P:ip:<ip>     active sessions created from one IP (the per-IP cap)
    P:ns:<node>   ids of sessions a node holds a side of (cleanup when it dies)
    P:nodes       every node that ever beat; P:hb:<node> its heartbeat (expires)
    P:rl:<name>:<key>   fixed-window counters (rate limits, TURN budgets)
    P:stats       hash: the stats.json totals, counted by the scripts that make the change
    P:node:<node> pub/sub channel: messages and closes for connections on that node

Every check-and-change (create, join, end, set-once fields) is one Lua script, so two
nodes never both take a slot or both count a transfer. Timestamps are wall-clock seconds.

Delivery (server.redis_router) uses pub/sub with one channel per node rather than
Streams: a signalling message is useless once either connection is gone, so nothing needs
to be kept, trimmed or acked, and PUBLISH costs no memory.

This module holds that layout's Lua scripts and the record codec; server.redis_store runs
them (the store, limiter and counters behind server/store.py's seams).
"""

from __future__ import annotations

import json

from server.store import SessionRecord

#: join and end answer the record hash as one JSON object: a flat HGETALL array of 24
#: strings cost redis-py's pure-Python RESP3 parser ~90 us to read, one string ~6 us
_RECORD = """
local function record(f)
  local h = {}
  for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
  return cjson.encode(h)
end
"""

CREATE = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'busy' end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 'ip' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'taken' end
redis.call('HSET', KEYS[3], 'v', ARGV[3], 'sip', ARGV[4], 'sct', ARGV[5], 'c', ARGV[6], 'ls', ARGV[6],
           'sn', ARGV[7], 'sh', ARGV[11])
redis.call('PEXPIRE', KEYS[3], ARGV[8])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[9])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[9])
redis.call('SADD', KEYS[5], ARGV[9])
redis.call('HINCRBY', KEYS[6], ARGV[10], 1)
return 'ok'
"""

#: the receiver slot; with ARGV[7] (the joining worker's neighbourhood, server.handoff) the
#: record names the sender's node for the receiver too when that node is a neighbour: the
#: joining worker hands the connection there, and nobody asks Redis again (ARGV[8]: prefix).
#: ARGV[9]: the client IP's failed-join window (the miss limiter's key), refused ('limited')
#: at ARGV[10] or more, first, as the handler's own check did in a round trip of its own
JOIN = _RECORD + """
if ARGV[9] and ARGV[9] ~= '' and tonumber(redis.call('GET', ARGV[9]) or '0') >= tonumber(ARGV[10]) then
  return 'limited'
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HEXISTS', KEYS[1], 'j') == 1 then return 'full' end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 'version' end
local rn, ns = ARGV[4], KEYS[3]
if ARGV[7] and ARGV[7] ~= '' then
  local f = redis.call('HMGET', KEYS[1], 'sn', 'sh')
  if f[1] and f[2] == ARGV[7] then
    rn, ns = f[1], ARGV[8] .. ':ns:' .. f[1]
  end
end
redis.call('HSET', KEYS[1], 'rct', ARGV[2], 'j', ARGV[3], 'ls', ARGV[3], 'rn', rn)
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[5])
redis.call('SADD', ns, ARGV[5])
redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
return record(redis.call('HGETALL', KEYS[1]))
"""

#: a joined receiver served by another node than its record names (an offer taken back):
#: the record names this one (ARGV[1]; KEYS[2] its sessions); false if the session ended
REHOME = _RECORD + """
if redis.call('HEXISTS', KEYS[1], 'j') == 0 then return false end
redis.call('HSET', KEYS[1], 'rn', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return record(redis.call('HGETALL', KEYS[1]))
"""

END = """
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local h = {}
for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
local ipk = ARGV[2] .. ':ip:' .. h['sip']
if redis.call('DECR', ipk) <= 0 then redis.call('DEL', ipk) end
if h['sn'] then redis.call('SREM', ARGV[2] .. ':ns:' .. h['sn'], ARGV[1]) end
if h['rn'] then redis.call('SREM', ARGV[2] .. ':ns:' .. h['rn'], ARGV[1]) end
return cjson.encode(h)
"""

#: set a field once, on a session that still exists
SET_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""

#: the first report of a finished transfer marks it and counts it with its bytes
COMPLETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'done', '1') == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

#: note activity on sessions ARGV[3..] (key prefix ARGV[2]); returns the ids that are gone
TOUCH = """
local gone = {}
for i = 3, #ARGV do
  if redis.call('EXISTS', ARGV[2] .. ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else
    gone[#gone + 1] = ARGV[i]
  end
end
return gone
"""

HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def record_of(fields: dict[str, str], session_id: str) -> SessionRecord:
    """A record from its hash's fields."""
    joined = fields.get("j")
    return SessionRecord(
        id=session_id,
        version=int(fields["v"]),
        sender_ip=fields.get("sip", ""),
        sender_client_type=fields.get("sct", ""),
        created=float(fields["c"]),
        last_seen=float(fields.get("ls", fields["c"])),
        joined_at=float(joined) if joined is not None else None,
        receiver_client_type=fields.get("rct", ""),
        file_info=fields.get("fi"),
        completed=fields.get("done") == "1",
        sender_node=fields.get("sn", ""),
        receiver_node=fields.get("rn", ""),
    )


def decode_record(answer: str, session_id: str) -> SessionRecord:
    """A record from a script's JSON answer (JOIN, END)."""
    fields = json.loads(answer)
    return record_of({str(k): str(v) for k, v in fields.items()}, session_id)
