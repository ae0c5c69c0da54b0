// Part 3 of 5: charts as inline SVG (no library; the CSP allows no external script). A chart
// stacks step areas, one per upstream (each sample is a mean over its interval, so it is drawn
// as a flat step across it), may draw one unstacked line on top (a route's 5xx), and marks each
// active-tier change with a dashed vertical line and its label.

const fixed = (n) => n.toFixed(1);

/** Runs of contiguous points (a new run where a sample does not start where the last ended). */
function runs(points) {
  const out = [];
  let run = [];
  points.forEach((p, i) => {
    const prev = points[i - 1];
    if (prev && p.t - p.dt - prev.t > 1500) { out.push(run); run = []; }
    run.push(i);
  });
  if (run.length) out.push(run);
  return out;
}

/** The SVG path of the step area between `lower` and `upper` (values per point). */
function stepArea(points, lower, upper, x, y) {
  return runs(points).map((run) => {
    const top = run.flatMap((i) => [`${fixed(x(points[i].t - points[i].dt))},${fixed(y(upper[i]))}`,
      `${fixed(x(points[i].t))},${fixed(y(upper[i]))}`]);
    const bottom = run.slice().reverse().flatMap((i) => [`${fixed(x(points[i].t))},${fixed(y(lower[i]))}`,
      `${fixed(x(points[i].t - points[i].dt))},${fixed(y(lower[i]))}`]);
    return `M${top.join('L')}L${bottom.join('L')}Z`;
  }).join('');
}

/** The SVG path of the steps of `values` (per point). */
function stepLine(points, values, x, y) {
  return runs(points).map((run) => `M${run.flatMap((i) => [
    `${fixed(x(points[i].t - points[i].dt))},${fixed(y(values[i]))}`,
    `${fixed(x(points[i].t))},${fixed(y(values[i]))}`]).join('L')}`).join('');
}

/** Requests counted by a series within [from, to]: the sum of rate × interval. */
const countOf = (points, from) =>
  points.reduce((acc, p) => acc + (p.t > from && p.v ? (p.v * p.dt) / 1000 : 0), 0);

/** Time ticks at a round step, at most about `most` of them. */
function ticks(from, to, most) {
  const step = [10, 30, 60, 120, 300].map((s) => s * 1000).find((s) => (to - from) / s <= most) || 600000;
  const out = [];
  for (let t = Math.ceil(from / step) * step; t < to; t += step) out.push(t);
  return out;
}

function svgText(x, y, text, attrs) {
  const t = svg('text', { x: fixed(x), y, 'font-size': 10, fill: '#656d76', ...attrs });
  t.textContent = text;
  return t;
}

/**
 * A chart of `layers` [{key, colour, points}] stacked (points as `series` gives them, aligned),
 * `line` {key, colour, points} or null drawn on top, and `markers` (tierChanges). `opts`: W, H
 * (viewBox size), wide (full-width, with clock ticks), label (of a marker: m => text).
 */
function stackChart(layers, line, markers, opts) {
  const { W, H } = opts;
  const { from, to } = chartWindow();
  const top = 12, bottom = 14;
  const n = layers.length ? layers[0].points.length : line ? line.points.length : 0;
  let below = new Array(n).fill(0);
  const bands = layers.map((l) => {
    const upper = l.points.map((p, i) => below[i] + (p.v || 0));
    const band = { layer: l, lower: below, upper };
    below = upper;
    return band;
  });
  const visible = (vals, pts) => vals.filter((v, i) => pts[i] && pts[i].t > from);
  const peak = Math.max(1, ...(bands.length ? visible(below, bands[0].layer.points) : []),
    ...(line ? visible(line.points.map((p) => p.v || 0), line.points) : []));
  const max = peak * 1.15;
  const x = (t) => ((t - from) / (to - from)) * W;
  const y = (v) => H - bottom - (v / max) * (H - top - bottom);
  const el = svg('svg', { class: opts.wide ? 'chart wide' : 'chart', viewBox: `0 0 ${W} ${H}`,
    role: 'img' });
  if (opts.wide) {
    for (const t of ticks(from, to, 10)) {
      el.append(svg('line', { x1: fixed(x(t)), x2: fixed(x(t)), y1: top, y2: y(0), stroke: '#eaeef2' }));
      el.append(svgText(x(t), H - 2, clock(t), { 'text-anchor': 'middle' }));
    }
  }
  el.append(svg('line', { x1: 0, x2: W, y1: y(0), y2: y(0), stroke: '#d0d7de' }));
  for (const b of bands) {
    el.append(svg('path', { d: stepArea(b.layer.points, b.lower, b.upper, x, y),
      fill: b.layer.colour, 'fill-opacity': 0.7, 'data-series': b.layer.key, 'data-total': countOf(b.layer.points, from).toFixed(1) }));
  }
  if (line) {
    const values = line.points.map((p) => p.v || 0);
    el.append(svg('path', { d: stepLine(line.points, values, x, y), fill: 'none',
      stroke: line.colour, 'stroke-width': 1.6, 'data-series': line.key,
      'data-total': countOf(line.points, from).toFixed(1) }));
  }
  markers.filter((m) => m.t >= from && m.t <= to).forEach((m, i) => {
    const mx = x(m.t);
    const g = svg('g', { class: 'marker', 'data-subject': m.route, 'data-from': m.from,
      'data-to': m.to });
    const title = svg('title', {});
    title.textContent = `${clock(m.t)} ${m.route}: tier ${m.from} → ${m.to} — ${m.reason}`;
    const right = mx > W - 110;
    g.append(title, svg('line', { x1: fixed(mx), x2: fixed(mx), y1: 0, y2: y(0) }),
      svgText(right ? mx - 3 : mx + 3, top + 10 + (i % 2) * 12, opts.label(m),
        { 'text-anchor': right ? 'end' : 'start', class: 'marker-label' }));
    el.append(g);
  });
  el.append(svgText(4, 10, `${fmtRate(peak)}/s`, {}));
  if (!opts.wide) {
    const secs = Math.round((to - from) / 1000);
    el.append(svgText(4, H - 2, secs >= 120 ? `-${Math.round(secs / 60)} min` : `-${secs} s`, {}));
    el.append(svgText(W - 4, H - 2, 'now', { 'text-anchor': 'end' }));
  }
  return el;
}
