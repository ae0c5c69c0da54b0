// Part 2 of 5: the server's rate history (GET /history). The server reads its counters once a
// second and computes each sample's rates from its own clock; the page only keeps the samples
// (fetching those after the last it has) and reads series, recent means and tier changes out
// of them. A tab the browser throttled simply fetches more samples at its next poll.

const hist = { last: 0, samples: [] };

/** Appends the samples after the last one held; starts over when the server restarted. */
async function fetchHistory() {
  const r = await api(`/history?after=${hist.last}`);
  if (!r.ok) throw new Error(`/history answered ${r.status}`);
  const answer = await r.json();
  if (answer.last < hist.last) { // a new process: its numbers start again from 1
    hist.last = 0;
    hist.samples = [];
    return fetchHistory();
  }
  hist.samples.push(...answer.samples);
  hist.last = answer.last;
  const newest = hist.samples.length ? hist.samples[hist.samples.length - 1].t : 0;
  while (hist.samples.length && hist.samples[0].t < newest - KEEP_MS) hist.samples.shift();
  return answer;
}

/** The time span the charts show: [from, to] in server time (ms), at least MIN_WINDOW_MS. */
function chartWindow() {
  const s = hist.samples;
  const to = s.length ? s[s.length - 1].t : Date.now();
  const first = s.length ? s[0].t - s[0].dt_ms : to;
  return { from: to - Math.min(KEEP_MS, Math.max(MIN_WINDOW_MS, to - first)), to };
}

/** `pick(sample)` for each sample, as points {t, dt, v} (v null where pick found nothing). */
function series(pick) {
  return hist.samples.map((s) => {
    const v = pick(s);
    return { t: s.t, dt: s.dt_ms, v: typeof v === 'number' ? v : null };
  });
}

const upstreamRate = (name, key) => (s) => (s.upstreams[name] || {})[key];
const routeRate = (name, key) => (s) => (s.routes[name] || {})[key];
const answeredBy = (route, upstream) => (s) => ((s.routes[route] || {}).by_upstream || {})[upstream];

/** The time-weighted mean of a series over its last `ms`; null when it has no points. */
function recentMean(points, ms) {
  const have = points.filter((p) => p.v !== null);
  if (!have.length) return null;
  const end = have[have.length - 1].t;
  const pts = have.filter((p, i) => p.t > end - ms || i === have.length - 1);
  const span = pts.reduce((acc, p) => acc + p.dt, 0);
  return span > 0 ? pts.reduce((acc, p) => acc + p.v * p.dt, 0) / span : 0;
}

/** The newest sample's value of `pick`, or null. */
function newest(pick) {
  for (let i = hist.samples.length - 1; i >= 0; i--) {
    const v = pick(hist.samples[i]);
    if (v !== undefined) return v;
  }
  return null;
}

const tierName = (t) => (t === null || t === undefined || t === 'none' ? 'none' : String(t));

/**
 * Each change of route `name`'s active tier: the `active_tier` events of /status (exact time,
 * reason), and the changes the history shows that no event explains (events the bounded log
 * no longer holds). Sorted by time: [{t, route, from, to, reason}].
 */
function tierChanges(name) {
  const out = (app.status ? app.status.events : [])
    .filter((e) => e.kind === 'active_tier' && e.subject === name)
    .map((e) => ({ t: Date.parse(e.at), route: name, from: e.from, to: e.to, reason: e.reason }));
  let prev;
  for (const s of hist.samples) {
    const r = s.routes[name];
    if (!r) continue;
    const tier = tierName(r.active_tier);
    const explained = out.some((m) => m.to === tier && Math.abs(m.t - s.t) < s.dt_ms + 2000);
    if (prev !== undefined && tier !== prev && !explained) {
      out.push({ t: s.t - s.dt_ms / 2, route: name, from: prev, to: tier,
        reason: 'seen in the rate history' });
    }
    prev = tier;
  }
  return out.sort((a, b) => a.t - b.t);
}

/** The tier changes of every route. */
const allTierChanges = () =>
  (app.status ? app.status.routes : []).flatMap((r) => tierChanges(r.name)).sort((a, b) => a.t - b.t);
