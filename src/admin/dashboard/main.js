// Part 5 of 5: polling. Every POLL_MS: /status, the history samples after the last one held,
// and the demo's modes (looked for every 30 s while absent); then everything is rendered.

/** The demo panel's data when `GET /demo` answers 200; looked for again every 30 s if not. */
async function fetchDemo() {
  if (!app.demo && Date.now() < app.demoNext) return;
  try {
    const r = await api('/demo');
    app.demo = r.ok ? await r.json() : null;
  } catch (e) {
    if (e instanceof AuthNeeded) throw e;
    app.demo = null;
  }
  if (!app.demo) app.demoNext = Date.now() + 30000;
}

/** The history, or its last state when it cannot be read (the charts simply pause). */
async function fetchHistoryQuietly() {
  try {
    await fetchHistory();
  } catch (e) {
    if (e instanceof AuthNeeded) throw e;
  }
}

async function tick() {
  clearTimeout(app.timer);
  try {
    const [r] = await Promise.all([api('/status'), fetchHistoryQuietly(), fetchDemo()]);
    if (!r.ok) throw new Error(`/status answered ${r.status}`);
    const st = (app.status = await r.json());
    app.order = tierOrder(st);
    app.places = placesOf(st);
    app.colours = new Map(app.order.map((u, i) => [u.name, PALETTE[i % PALETTE.length]]));
    renderHeader(st);
    renderRoutes(st);
    renderTraffic();
    renderUpstreams();
    renderEvents(st);
    renderDemo();
    refreshAges();
    $('live').className = '';
    $('live').textContent = `live · ${new Date().toTimeString().slice(0, 8)}`;
    document.body.dataset.ready = '1';
    document.body.dataset.samples = hist.samples.length;
  } catch (e) {
    if (e instanceof AuthNeeded) {
      const had = sessionStorage.getItem(TOKEN_KEY);
      askToken(had ? 'That token was refused.' : 'The admin API wants a token.');
      return; // polling resumes once a token is given
    }
    $('live').className = 'down';
    $('live').textContent = `cannot read /status: ${e.message}`;
  }
  clearTimeout(app.timer); // a refresh after an action may have overlapped a poll
  app.timer = setTimeout(tick, POLL_MS);
}

tick();
