// ui/format.js: pure time and number wording, so every view says "5 min ago" the same way.
// Owns: countdown ("59m 12s", "1h 02m", "expired", "—"), relative ("5 min ago"), clock
// ("14:32", "tomorrow 14:32"), log time, date, duration. Every function takes `now` (ms).

const pad = (n) => String(n).padStart(2, '0');

/** RFC 3339 → epoch ms, or null. */
export function parseTime(s) {
  if (!s) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

export function countdown(expiresAt, now) {
  const t = parseTime(expiresAt);
  if (t === null) return '—';
  const total = Math.floor((t - now) / 1000);
  if (total <= 0) return 'expired';
  const d = Math.floor(total / 86400);
  const hrs = Math.floor((total % 86400) / 3600);
  const min = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d > 0) return `${d}d ${pad(hrs)}h`;
  if (hrs > 0) return `${hrs}h ${pad(min)}m`;
  return `${min}m ${pad(sec)}s`;
}

export function relative(at, now) {
  const t = parseTime(at);
  if (t === null) return 'Never';
  const s = Math.round((now - t) / 1000);
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const hrs = Math.round(s / 3600);
  if (hrs < 24) return `${hrs} h ago`;
  const d = Math.round(s / 86400);
  return d === 1 ? 'yesterday' : `${d} days ago`;
}

const dayStart = (t) => {
  const d = new Date(t);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
};

const hm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** A time of day, with the day when it is not today: "14:32", "tomorrow 09:10", "Mon 3 Mar 14:32". */
export function clock(at, now) {
  const t = parseTime(at);
  if (t === null) return '—';
  const d = new Date(t);
  const days = Math.round((dayStart(t) - dayStart(now)) / 86400000);
  if (days === 0) return hm(d);
  if (days === 1) return `tomorrow ${hm(d)}`;
  if (days === -1) return `yesterday ${hm(d)}`;
  return `${DAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]} ${hm(d)}`;
}

/** When something is scheduled: "due now" once it is in the past. */
export function upcoming(at, now) {
  const t = parseTime(at);
  if (t === null) return '—';
  return t <= now ? 'due now' : clock(at, now);
}

export function logTime(at, now) {
  const t = parseTime(at);
  if (t === null) return '—';
  const d = new Date(t);
  const time = `${hm(d)}:${pad(d.getSeconds())}`;
  return dayStart(t) === dayStart(now) ? time : `${d.getDate()} ${MONTHS[d.getMonth()]} ${time}`;
}

export function date(at) {
  const t = parseTime(at);
  if (t === null) return '—';
  const d = new Date(t);
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
}

export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}
