// A small SVG line chart of our own (issue 11 item 4): one polyline per series, shared axes, a legend.
const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4d7c0f', '#be185d'];

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : String(+v.toFixed(3));
}

/** An <svg> plotting `series` ({name: [[x, y], ...]}) with x labelled `xLabel`; `title` is its accessible name. */
export function lineChart(series, {title, xLabel}) {
  const W = 640;
  const H = 260;
  const L = 56;
  const R = 12;
  const T = 12;
  const B = 48;
  const names = Object.keys(series);
  const all = names.flatMap((n) => series[n]);
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart'});
  svg.append(el('title', {}, title));
  if (!all.length) return svg;
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  svg.append(el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis'}));
  svg.append(el('line', {x1: L, y1: T, x2: L, y2: H - B, class: 'axis'}));
  for (let i = 0; i <= 4; i += 1) {
    const y = y0 + ((y1 - y0) * i) / 4;
    svg.append(el('text', {x: L - 6, y: sy(y) + 4, 'text-anchor': 'end', class: 'tick'}, fmt(y)));
    const x = x0 + ((x1 - x0) * i) / 4;
    svg.append(el('text', {x: sx(x), y: H - B + 16, 'text-anchor': 'middle', class: 'tick'}, fmt(x)));
  }
  svg.append(el('text', {x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'tick'}, xLabel));
  names.forEach((name, i) => {
    const pts = series[name].map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    const color = COLORS[i % COLORS.length];
    svg.append(el('polyline', {points: pts, fill: 'none', stroke: color, 'stroke-width': 2}));
    svg.append(el('rect', {x: W - R - 140, y: T + i * 16, width: 10, height: 10, fill: color}));
    svg.append(el('text', {x: W - R - 126, y: T + 9 + i * 16, class: 'legend'}, name));
  });
  return svg;
}
