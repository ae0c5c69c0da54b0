// Part 4 of 5: rendering /status and the history: the header, each route's tier chain with its
// traffic by answering upstream, the traffic of every upstream with the tier changes marked,
// the upstreams in tier order with their role, rates and latency, the events, the demo panel.

const stateOf = (name) =>
  (app.status.upstreams.find((u) => u.name === name) || { state: 'unknown' }).state;

/** What tier `i` of a route with `count` tiers is for. */
function roleOf(i, count) {
  if (count === 1) return 'only tier';
  if (i === 0) return 'primary';
  if (i === count - 1) return 'origin';
  return i === 1 ? 'secondary' : `tier ${i}`;
}

/** Each upstream's places in the routes' tiers: name -> [{route, tier, count}]. */
function placesOf(st) {
  const places = new Map(st.upstreams.map((u) => [u.name, []]));
  for (const r of st.routes) {
    r.tiers.forEach((tier, i) => tier.forEach((n) => {
      if (places.has(n)) places.get(n).push({ route: r.name, tier: i, count: r.tiers.length });
    }));
  }
  return places;
}

/** Lexicographic order of two arrays of numbers. */
const lexical = (a, b) => {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
};

/** The upstreams in tier order: lowest tier in any route, then route order, then position;
 * those in no route last, by name. */
function tierOrder(st) {
  const key = new Map();
  st.routes.forEach((r, ri) => r.tiers.forEach((tier, ti) => tier.forEach((n, mi) => {
    const old = key.get(n);
    if (!old || lexical([ti, ri, mi], old) < 0) key.set(n, [ti, ri, mi]);
  })));
  return st.upstreams.slice().sort((a, b) => {
    const ka = key.get(a.name), kb = key.get(b.name);
    if (ka && kb) return lexical(ka, kb);
    return ka ? -1 : kb ? 1 : a.name.localeCompare(b.name);
  });
}

/** Why the route's active tier is what it is: the last active_tier event's reason. */
function whyActive(route) {
  const ev = app.status.events.filter((e) => e.kind === 'active_tier' && e.subject === route.name);
  return ev.length ? ev[ev.length - 1] : null;
}

const colourOf = (name) => (name === '-' ? '#8c959f' : app.colours.get(name) || '#57606a');

function renderHeader(st) {
  $('cfg-path').textContent = st.config.path;
  $('cfg-gen').textContent = st.config.generation;
  $('cfg-loaded').replaceChildren(clock(st.config.loaded_at), ' (', age(st.config.loaded_at), ')');
  const err = $('last-error');
  err.hidden = st.config.last_error === null;
  err.textContent = st.config.last_error === null ? '' : `Last reload failed: ${st.config.last_error}`;
}

function tierBox(route, tier, i) {
  const usable = tier.some((n) => stateOf(n) === 'healthy');
  const active = route.active_tier === i;
  const pinned = route.pinned && route.pinned.tier === i;
  const cls = ['tier', active && 'active', !usable && 'unusable'].filter(Boolean).join(' ');
  return h('div', { class: cls, 'data-tier': i },
    h('div', { class: 'tier-head' }, `tier ${i} · ${roleOf(i, route.tiers.length)}`,
      active ? h('span', { class: 'tag' }, 'ACTIVE') : null,
      pinned ? h('span', { class: 'tag pin' }, 'PINNED') : null),
    h('ul', {}, tier.map((n) => h('li', { class: stateOf(n), 'data-member': n, title: stateOf(n) },
      h('span', { class: 'dot' }), n))),
    pinned ? null : h('button', { onclick: () => {
      const body = askReason(`pin ${route.name} to tier ${i}`);
      if (body) post(`/routes/${encodeURIComponent(route.name)}/pin`, { tier: i, ...body });
    } }, `Pin to tier ${i}`));
}

function routeBody(route) {
  const chain = [];
  route.tiers.forEach((tier, i) => {
    if (i) chain.push(h('span', { class: 'arrow' }, '→'));
    chain.push(tierBox(route, tier, i));
  });
  const ev = whyActive(route);
  const why = route.active_tier === null
    ? [h('span', { class: 'none' }, 'none usable'), ev ? ` — ${ev.reason}` : '']
    : [h('b', {}, `tier ${route.active_tier} active`), ` — ${ev ? ev.reason : 'first usable tier'}`];
  const unpin = () => {
    const body = askReason(`unpin ${route.name}`);
    if (body) post(`/routes/${encodeURIComponent(route.name)}/unpin`, body);
  };
  return [
    h('div', { class: 'route-head' }, h('h3', {}, route.name),
      h('span', { class: 'muted' }, 'hosts ', h('code', {}, route.hosts.join(', ')),
        ' · path ', h('code', {}, route.path_prefix)),
      route.pinned ? h('span', {}, h('span', { class: 'tag pin' }, `PINNED to tier ${route.pinned.tier}`),
        ` ${route.pinned.reason || ''} · `, age(route.pinned.at), ' ',
        h('button', { onclick: unpin }, 'Unpin')) : null),
    // An origin failing behind healthy CDNs is not a CDN outage: said apart, in its own words.
    route.origin_failing ? h('p', { class: 'origin-failing', 'data-origin': 'failing' },
      h('span', { class: 'tag bad' }, 'ORIGIN FAILING'),
      ' the origin\'s errors reach readers through every tier; the CDNs are not blamed and stay in use')
      : null,
    h('div', { class: 'chain' }, chain),
    h('p', { class: 'why' }, why, ev ? [' · ', age(ev.at)] : null),
    failbackLine(route),
  ];
}

/** The warm standby's share and the next failback's delay (doubled after relapses). */
function failbackLine(route) {
  const pct = (100 * (route.standby_share || 0));
  const standby = pct > 0
    ? h('span', { 'data-standby': String(route.standby_share) },
      h('span', { class: 'tag standby' }, `STANDBY ${+pct.toFixed(2)} %`),
      ' of GET/HEAD tried first on the next usable tier after the active one')
    : h('span', { class: 'muted', 'data-standby': '0' }, 'no warm standby');
  const ms = route.failback_delay_ms;
  const delay = ms === undefined ? null
    : h('span', { 'data-failback-delay-ms': String(ms) }, ` · next failback waits ${fmtDelay(ms)}`);
  return h('p', { class: 'standby' }, standby, delay);
}

function fmtDelay(ms) {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

/** A route's requests/s stacked by the upstream that answered, its 5xx/s, its tier changes. */
function renderRouteRates(box, r) {
  const names = [...r.tiers.flat(), '-'];
  const layers = names.map((n) => ({ key: `answered:${n}`, colour: colourOf(n),
    points: series(answeredBy(r.name, n)) }));
  const errors = series(routeRate(r.name, 'errors'));
  const req = recentMean(series(routeRate(r.name, 'requests')), RECENT_MS) || 0;
  const err = recentMean(errors, RECENT_MS) || 0;
  const pct = req > 0 ? ` (${((100 * err) / req).toFixed(1)} %)` : '';
  const label = (m) => (m.to === 'none' ? '→ none' : `→ tier ${m.to}`);
  box.replaceChildren(
    h('div', { class: 'nums' }, h('span', { class: 'req' }, h('b', {}, fmtRate(req)), ' req/s'),
      h('span', { class: 'err' }, h('b', {}, fmtRate(err)), ` 5xx/s${pct}`)),
    stackChart(layers, { key: 'errors', colour: '#cf222e', points: errors }, tierChanges(r.name),
      { W: 380, H: 90, label }));
}

function renderRoutes(st) {
  sync($('routes'), st.routes, (r) => r.name,
    (r) => h('div', { class: 'route', 'data-route': r.name },
      h('div', { class: 'body' }), h('div', { class: 'rates' })),
    (el, r) => {
      el.dataset.activeTier = r.active_tier === null ? 'none' : r.active_tier;
      // Rebuilt only when something it shows changed, so buttons stay put between polls.
      const ev = whyActive(r);
      const sig = JSON.stringify([r, r.tiers.flat().map(stateOf), ev]);
      const body = el.querySelector('.body');
      if (shownSig.get(body) !== sig) {
        shownSig.set(body, sig);
        body.replaceChildren(...routeBody(r));
      }
      renderRouteRates(el.querySelector('.rates'), r);
    });
}

/** Every upstream's answered and failed attempts/s, stacked in tier order, tier changes marked. */
function renderTraffic() {
  const layers = (key) => app.order.map((u) => ({ key: `${key}:${u.name}`, colour: colourOf(u.name),
    points: series(upstreamRate(u.name, key)) }));
  const markers = allTierChanges();
  const label = (m) => `${m.route} → ${m.to === 'none' ? 'none usable' : `tier ${m.to}`}`;
  $('chart-ok').replaceChildren(stackChart(layers('ok'), null, markers,
    { W: 1200, H: 130, wide: true, label }));
  $('chart-failed').replaceChildren(stackChart(layers('failed'), null, markers,
    { W: 1200, H: 80, wide: true, label }));
  const { from, to } = chartWindow();
  const secs = Math.round((to - from) / 1000);
  $('traffic-span').textContent = `· last ${secs >= 120 ? `${Math.round(secs / 60)} min` : `${secs} s`}`
    + ` · ${markers.filter((m) => m.t >= from).length} tier change(s) marked`;
  sync($('legend'), app.order, (u) => u.name,
    (u) => h('span', { 'data-legend': u.name }, h('span', { class: 'swatch' }), u.name, ' ',
      h('span', { class: 'muted' })),
    (el, u) => {
      el.firstChild.style.background = colourOf(u.name);
      el.lastChild.textContent = (app.places.get(u.name) || []).map((p) => roleOf(p.tier, p.count))
        .filter((v, i, all) => all.indexOf(v) === i).join(', ');
    });
}

function roleCell(u) {
  const places = app.places.get(u.name) || [];
  const routes = new Set(places.map((p) => p.route));
  return [
    ...places.map((p) => h('div', {}, `tier ${p.tier} · ${roleOf(p.tier, p.count)}`,
      routes.size > 1 ? h('span', { class: 'muted' }, ` (${p.route})`) : null)),
    places.length ? null : h('span', { class: 'muted' }, 'in no route'),
    u.role ? h('span', { class: 'tag' }, u.role) : null,
  ];
}

function probeCell(c) {
  if (!c) return h('span', { class: 'muted' }, 'not probed yet');
  return h('span', {},
    c.ok ? h('span', {}, 'ok') : h('span', { class: 'fail' }, 'failed'),
    c.status ? ` ${c.status}` : '', ` · ${c.latency_ms.toFixed(1)} ms · `, age(c.at),
    c.error ? h('span', { class: 'error' }, c.error) : null);
}

function renderUpstreams() {
  sync($('upstreams'), app.order, (u) => u.name,
    (u) => {
      const button = h('button', { onclick: () => {
        const drained = button.closest('tr').dataset.state === 'drained';
        const action = drained ? 'undrain' : 'drain';
        const body = askReason(`${action} ${u.name}`);
        if (body) post(`/upstreams/${encodeURIComponent(u.name)}/${action}`, body);
      } });
      const num = (key) => h('td', { class: 'num', 'data-col': key });
      return h('tr', { 'data-upstream': u.name },
        h('td', {}, h('span', { class: 'swatch' }), h('b', {}, u.name),
          h('code', { class: 'address' }, u.address)),
        h('td', { class: 'role' }), h('td', { class: 'state-cell' }), num('in-flight'), num('ok'), num('failed'),
        num('p50'), num('p95'), h('td', { class: 'probe' }), h('td', {}, button));
    },
    (tr, u) => {
      tr.dataset.state = u.state;
      const [name, role, state, inFlight, ok, failed, p50, p95, probe, action] = tr.children;
      name.firstChild.style.background = colourOf(u.name);
      role.replaceChildren(...roleCell(u).filter(Boolean));
      state.replaceChildren(h('span', { class: u.state }, h('span', { class: 'dot' }),
        h('span', { class: 'state' }, u.state)));
      inFlight.textContent = u.in_flight;
      const mean = (key) => recentMean(series(upstreamRate(u.name, key)), RECENT_MS);
      const [okRate, failedRate] = [mean('ok'), mean('failed')];
      ok.textContent = okRate === null ? '–' : fmtRate(okRate);
      failed.textContent = failedRate === null ? '–' : fmtRate(failedRate);
      failed.classList.toggle('fail', failedRate > 0);
      p50.textContent = fmtMs(newest(upstreamRate(u.name, 'p50_ms')));
      p95.textContent = fmtMs(newest(upstreamRate(u.name, 'p95_ms')));
      probe.replaceChildren(probeCell(u.last_check));
      action.firstChild.textContent = u.state === 'drained' ? 'Undrain' : 'Drain';
    });
}

function renderEvents(st) {
  const shown = st.events.slice(-EVENTS_SHOWN).reverse();
  const sig = JSON.stringify(shown[0] || null) + st.events.length;
  const list = $('events');
  if (shownSig.get(list) === sig) return;
  shownSig.set(list, sig);
  list.replaceChildren(...shown.map((e) => h('li', { 'data-kind': e.kind },
    h('span', { title: e.at }, clock(e.at)), h('span', { class: 'kind' }, e.kind.replace('_', ' ')),
    h('b', { class: 'subject', title: e.subject }, e.subject),
    h('span', {}, e.from || e.to ? `${e.from || '–'} → ${e.to || '–'}` : ''),
    h('span', { class: 'muted' }, e.reason))));
  if (!shown.length) list.append(h('li', { class: 'muted' }, 'no events yet'));
}

function renderDemo() {
  const panel = $('demo');
  panel.hidden = !app.demo;
  if (!app.demo) return;
  sync($('demo-rows'), app.demo.upstreams, (u) => u.name,
    (u) => h('tr', { 'data-demo': u.name }, h('td', {}, h('b', {}, u.name)),
      h('td', {}, h('span', { class: 'modes' }, DEMO_MODES.map((m) => h('button', {
        'data-mode': m, title: `make ${u.name} answer: ${m}`,
        onclick: () => post(`/demo/${encodeURIComponent(u.name)}/${m}`, {}) }, m))))),
    (tr, u) => tr.querySelectorAll('button').forEach((b) => {
      b.classList.toggle('on', b.dataset.mode === u.mode);
    }));
}
