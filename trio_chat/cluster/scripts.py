"""The Lua scripts a node runs in Redis: every write checks, in the same
atomic step, that the keys still belong to this node's cluster (its epoch).

Were Redis to lose the cluster's state (a restart without its data), a node
must neither write into what another node set up there meanwhile nor renew a
lease or trim a log that is not its own: each write below does nothing and
answers ``LOST`` (or ``-1``) when the epoch differs. ``RESTORE`` and
``REJOIN`` are how the nodes of the old cluster take their places again.
"""

from __future__ import annotations

LOST = 0

# Whether stream id a comes before stream id b ("MS-SEQ"; a double holds
# Redis's milliseconds exactly).
OLDER = """
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
"""

# KEYS: epoch, this node's lease, nodes, applied, trimmed.
# ARGV: epoch, lease ms, node, applied id, the lease keys' prefix, this
# node's token, then the nodes this one took for dead since (they leave the
# set of joined nodes, unless they renewed their lease meanwhile).
# A node whose applied id is older than the last entry trimmed from the log
# has missed entries for good: its lease is not renewed (the node stops).
# Reply: Redis's TIME (two fields), then -1 and the epoch (nil if none) if
# the epoch is not this node's; else whether this node's lease was still
# there (1/0), whether it was still in the set of joined nodes (1/0: else
# another node took it for dead and forgot it), the last entry trimmed from
# the log ('' if none), then each joined node and whether its lease is alive
# (1/0).
RENEW = (
    OLDER
    + """
local now = redis.call('TIME')
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  return {now[1], now[2], -1, epoch}
end
local had = redis.call('EXISTS', KEYS[2])
local joined = redis.call('SISMEMBER', KEYS[3], ARGV[3])
local trimmed = redis.call('GET', KEYS[5])
if not (trimmed and older(ARGV[4], trimmed)) then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
end
for i = 7, #ARGV do
  if redis.call('EXISTS', ARGV[5] .. ARGV[i]) == 0 then
    redis.call('SREM', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
  end
end
local reply = {now[1], now[2], had, joined, trimmed or ''}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  reply[#reply + 1] = node
  reply[#reply + 1] = redis.call('EXISTS', ARGV[5] .. node)
end
return reply
"""
)

# KEYS: epoch, then the stream of each entry. ARGV: epoch, then for each
# entry its number of fields and the fields, or DELETE alone: the stream is
# deleted instead (a dead node's data stream, after what was sent before).
# Every entry is tagged with the epoch (field "x"), so a reader can tell
# another cluster's entries.
DELETE = -1
APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = 2
for i = 2, #KEYS do
  local count = tonumber(ARGV[at])
  if count < 0 then
    redis.call('DEL', KEYS[i])
    at = at + 1
  else
    local entry = {KEYS[i], '*', 'x', ARGV[1]}
    for j = 1, 2 * count do entry[4 + j] = ARGV[at + j] end
    at = at + 1 + 2 * count
    redis.call('XADD', unpack(entry))
  end
end
return 1
"""

# The lowest-numbered live node saves its replica and trims the log up to
# what every joined node has applied, in one step with reading their
# positions: a node that joins meanwhile, or whose lease lapsed, keeps its
# entries. Only a node another took for dead and forgot (see RENEW) can be
# trimmed past; the last entry trimmed is kept in ``trimmed``, so that such
# a node finds out rather than read on over the gap. A node that is behind
# that entry, or was forgotten, saves nothing.
# KEYS: epoch, snapshot, log, nodes, applied, trimmed.
# ARGV: epoch, snapshot, this node, the log entry the snapshot includes.
# Reply: 1 (saved, and the log trimmed up to this node's entry), 0 (another
# epoch), SKIPPED (this node may not save), HELD_BACK (saved, but another
# joined node's position kept the log longer: worth saving again even with
# nothing new applied, since that node may be forgotten meanwhile).
SKIPPED = 2
HELD_BACK = 3
SNAPSHOT = (
    OLDER
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local trimmed = redis.call('GET', KEYS[6])
if redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 0 or (trimmed and older(ARGV[4], trimmed)) then
  return 2
end
redis.call('SET', KEYS[2], ARGV[2])
local keep = ARGV[4]
for _, node in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if node ~= ARGV[3] then
    -- (No position yet: it is joining, or taking its place again.)
    local at = redis.call('HGET', KEYS[5], node) or '0-0'
    if older(at, keep) then keep = at end
  end
end
if keep ~= '0-0' then
  local last = redis.call('XREVRANGE', KEYS[3], '(' .. keep, '-', 'COUNT', 1)
  if #last > 0 then
    redis.call('SET', KEYS[6], last[1][1])
    redis.call('XTRIM', KEYS[3], 'MINID', keep)
  end
end
if keep ~= ARGV[4] then return 3 end
return 1
"""
)

# KEYS: epoch, nodes, applied, then keys to delete. ARGV: epoch, node.
FORGET_NODE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""

# The first node to see that Redis lost the cluster's state writes it back.
# KEYS: epoch, config, counter, snapshot, restored, nodes, applied, this
# node's lease, log. ARGV: the new epoch, the config, the highest node number
# this node knows, the snapshot, the id it includes, lease ms, this node, the
# log's first id from now on, this node's token, then the other nodes this
# node knows (they must renew in time or be taken for dead).
# Reply: 1, or the epoch that another node wrote first.
RESTORE = """
local epoch = redis.call('GET', KEYS[1])
if epoch then return epoch end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[4])
redis.call('SET', KEYS[5], ARGV[5])
redis.call('SET', KEYS[8], ARGV[9], 'PX', ARGV[6])
redis.call('SADD', KEYS[6], ARGV[7])
redis.call('HSET', KEYS[7], ARGV[7], ARGV[5])
for i = 10, #ARGV do redis.call('SADD', KEYS[6], ARGV[i]) end
if redis.call('EXISTS', KEYS[9]) == 0 then
  -- New entries get ids after the restored one even if this Redis's clock is behind.
  redis.call('XADD', KEYS[9], ARGV[8], 'x', ARGV[1])
  redis.call('XDEL', KEYS[9], ARGV[8])
end
return 1
"""

# Another node wrote the state back: this one takes its place again if its
# replica has applied the log exactly as far, and its number is free.
# KEYS: epoch, restored, counter, this node's lease, nodes, applied.
# ARGV: the epoch seen, this node's applied id, the highest node number this
# node knows, lease ms, this node, its token.
# Reply: 1 (done), 0 (the replica differs), -2 (the number is taken), -3 (the
# epoch moved on meanwhile). (This node's own lease may be there already: a
# RESTORE of its own that timed out and ran all the same.)
REJOIN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -3 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[6] then return -2 end
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('HSET', KEYS[6], ARGV[5], ARGV[2])
return 1
"""

# A reload changed the config every node runs (events.Reconfigure): nodes
# that join from now on must run the new one. KEYS: epoch, config. ARGV:
# epoch, the new config's fingerprint.
SET_CONFIG = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
