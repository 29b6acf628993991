"""The Lua scripts of the Redis Streams engine: each runs atomically on the server, so
no consumer or publisher acts between its steps."""

from __future__ import annotations

# Ack and move to the dead-letter stream, only while the entry is still pending; the
# dead-letter stream keeps its newest ARGV[9] entries (0: all).
DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return false
end
local args = {'XADD', KEYS[2]}
if tonumber(ARGV[9]) > 0 then
  table.insert(args, 'MAXLEN')
  table.insert(args, ARGV[9])
end
for _, value in ipairs({'*', 'event', ARGV[3], 'type', ARGV[4], 'subject', ARGV[5],
    'stream', KEYS[1], 'group', ARGV[1], 'entry_id', ARGV[2], 'deliveries', ARGV[6],
    'reason', ARGV[7], 'dead_at', ARGV[8]}) do
  table.insert(args, value)
end
return redis.call(unpack(args))
"""

# Remove the consumers of every group of the stream that have nothing pending and have
# been idle longer than ARGV[1] ms; returns how many went.
FORGET_IDLE_CONSUMERS = """
local removed = 0
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = {}
  for i = 1, #g, 2 do
    group[g[i]] = g[i + 1]
  end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], group['name'])) do
    local consumer = {}
    for i = 1, #c, 2 do
      consumer[c[i]] = c[i + 1]
    end
    if consumer['pending'] == 0 and consumer['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group['name'], consumer['name'])
      removed = removed + 1
    end
  end
end
return removed
"""

# Re-publish a dead letter to its stream and drop it, atomically.
REPLAY = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return false
end
local fields = found[1][2]
local values = {}
for i = 1, #fields, 2 do
  values[fields[i]] = fields[i + 1]
end
local id = redis.call('XADD', KEYS[2], '*', 'event', values['event'],
  'type', values['type'] or '', 'subject', values['subject'] or '')
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"""

# Keep a pending entry with its owner and delivery count; make it reclaimable later.
RETRY_LATER = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], p[1][2], 0, ARGV[2], 'IDLE', ARGV[3],
  'RETRYCOUNT', p[1][4], 'JUSTID')
return 1
"""

# Trim to the newest ARGV[1] entries, but never past the first entry some group has
# pending or not yet delivered (all in one script: no group can read in between).
TRIM = """
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then
  return 0
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq), ms}
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local function successor(id)
  local p = parse(id)
  return {p[1], p[2] + 1, p[3] .. '-' .. string.format('%.0f', p[2] + 1)}
end
local floor = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do
    info[g[i]] = g[i + 1]
  end
  local first = successor(info['last-delivered-id'])
  if info['pending'] > 0 then
    local min = redis.call('XPENDING', KEYS[1], info['name'])[2]
    local p = parse(min)
    if less(p, first) then
      first = {p[1], p[2], min}
    end
  end
  if floor == nil or less(first, floor) then
    floor = first
  end
end
local bound = '+'
if floor ~= nil then
  bound = '(' .. floor[3]
end
local e = redis.call('XRANGE', KEYS[1], '-', bound, 'COUNT', excess)
if #e == 0 then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', successor(e[#e][1])[3])
"""
