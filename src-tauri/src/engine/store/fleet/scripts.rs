//! The fleet's Lua scripts: each check-and-write happens in one step inside Redis, where the
//! hosts meet. Compiled once.

use std::sync::LazyLock;

/// Takes the lease and a new fence in one step: 0 when another host holds it.
/// KEYS: lease, fence counter, the account's token entry; ARGV: holder, lease ms, floor.
/// The fence is above the counter, the stored set's fence and the floor (the highest fence the
/// host has seen): a Redis that went back to an older state (a snapshot, a replica, a backup)
/// has an older counter, and a fence must never be handed out twice.
pub(super) static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  local stored = tonumber(redis.call('HGET', KEYS[3], 'fence') or '0') or 0
  local above = math.max(stored, tonumber(ARGV[3]) or 0)
  if fence <= above then
    fence = above + 1
    redis.call('SET', KEYS[2], fence)
  end
  return fence
end
return 0",
    )
});

/// Extends the lease, only while it is still ours.
pub(super) static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

pub(super) static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// Writes a sealed entry and tells the fleet; 0 when refused. KEYS: the entry, the channel;
/// ARGV: fence, blob, message, mode. A `lease` write goes in unless a newer fence wrote; a
/// `restore` (a host storing its copy again) only where nothing is stored or an older fence
/// wrote, so that it never replaces a set fetched under an equal fence since. A blob sealed
/// before fences were (no `v2:`) vouches for no fence: to a restore it counts as fence 0,
/// as it does to the hosts' reads.
pub(super) static WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local stored = redis.call('HGET', KEYS[1], 'fence')
if stored then
  stored = tonumber(stored) or 0
  local fence = tonumber(ARGV[1])
  if ARGV[4] == 'restore' then
    local blob = redis.call('HGET', KEYS[1], 'blob') or ''
    if string.sub(blob, 1, 3) ~= 'v2:' then
      stored = 0
    end
    if fence <= stored then
      return 0
    end
  elseif fence < stored then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'blob', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1",
    )
});

/// How a write meets what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Lease,
    Restore,
}

impl Mode {
    pub(super) fn arg(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Restore => "restore",
        }
    }
}
