// Small SVG charts drawn by the console itself (no library): a grouped bar chart, a line
// chart and a horizontal bar chart, each with axes, labels, a legend and accessible titles
// (the <svg> is an image named by its <title> and <desc>; every bar and point has a <title>
// with its value, shown as a tooltip too).
//
// A chart is a <figure> that draws itself at its own width (a viewBox in CSS pixels, so text
// stays readable on a 390 px phone) and again when that width changes. Series are styled by
// class (.series-0, .series-1 …) in console.css.
const NS = 'http://www.w3.org/2000/svg';
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 48 };
let nextId = 0;

function el(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
}

const title = (text) => el('title', {}, text);

/** A round upper bound and step for an axis from 0 to max: 1, 2 or 5 × 10^n steps. */
export function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

/** Draws `draw(svg, width)` into a figure at the figure's width, and again on resize. */
function figure(spec, draw) {
  const id = `chart-${(nextId += 1)}`;
  const fig = document.createElement('figure');
  fig.className = `chart ${spec.cls ?? ''}`.trim();
  if (spec.testId) fig.dataset.testid = spec.testId;
  let drawn = 0;
  const paint = () => {
    const width = Math.max(280, Math.round(fig.clientWidth || 640));
    if (width === drawn) return;
    drawn = width;
    const svg = el('svg', {
      viewBox: `0 0 ${width} ${HEIGHT}`, width: '100%', height: HEIGHT, role: 'img',
      'aria-labelledby': `${id}-t ${id}-d`, preserveAspectRatio: 'xMinYMin meet',
    }, el('title', { id: `${id}-t` }, spec.title), el('desc', { id: `${id}-d` }, spec.desc ?? ''));
    draw(svg, width);
    fig.querySelector('svg')?.remove();
    fig.prepend(svg);
  };
  paint();
  if (spec.series?.length > 1 || spec.legend) {
    const legend = document.createElement('ul');
    legend.className = 'legend';
    (spec.series ?? []).forEach((s, i) => {
      const li = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.className = `swatch series-${i}`;
      swatch.setAttribute('aria-hidden', 'true');
      li.append(swatch, s.name);
      legend.append(li);
    });
    fig.append(legend);
  }
  if (window.ResizeObserver) new ResizeObserver(paint).observe(fig);
  return fig;
}

/** The y axis (ticks, grid lines, labels) for 0..top; returns y(value). */
function yAxis(svg, width, top, step, format) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const g = el('g', { class: 'axis y' });
  for (let i = 0; i * step <= top + step / 2; i += 1) {
    const v = Number((i * step).toPrecision(10)); // 0.6, not 0.6000000000000001
    g.append(el('line', { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), class: v ? 'grid' : 'base' }));
    g.append(el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  svg.append(g);
  return y;
}

/** Category labels under the plot, thinned so they never overlap. */
function xLabels(svg, labels, center, slot) {
  const longest = Math.max(1, ...labels.map((l) => String(l).length));
  const every = Math.max(1, Math.ceil((longest * 7 + 6) / slot));
  const g = el('g', { class: 'axis x' });
  labels.forEach((label, i) => {
    if (i % every) return;
    g.append(el('text', { x: center(i), y: HEIGHT - PAD.bottom + 16, 'text-anchor': 'middle' }, String(label)));
  });
  svg.append(g);
}

/**
 * Grouped vertical bars. spec: { title, desc, labels: [category], series: [{ name, values }],
 * format(v) for axis and titles, testId }. Every value gets a <rect class="bar"> (zero ones
 * are flat), with data-series, data-index and data-value.
 */
export function barChart(spec) {
  return figure(spec, (svg, width) => {
    const n = spec.labels.length;
    const k = spec.series.length;
    const format = spec.format ?? String;
    const max = Math.max(0, ...spec.series.flatMap((s) => s.values));
    const { top, step } = niceScale(max);
    const y = yAxis(svg, width, top, step, (v) => format(v));
    const slot = (width - PAD.left - PAD.right) / Math.max(1, n);
    const barW = Math.max(1, (slot * 0.8) / k);
    const g = el('g', { class: 'bars' });
    spec.labels.forEach((label, i) => {
      spec.series.forEach((s, j) => {
        const v = s.values[i] ?? 0;
        const x = PAD.left + i * slot + slot * 0.1 + j * barW;
        g.append(el('rect', {
          class: `bar series-${j}`, x: x.toFixed(1), y: y(v).toFixed(1), width: barW.toFixed(1),
          height: (y(0) - y(v)).toFixed(1), 'data-series': j, 'data-index': i, 'data-value': v,
        }, title(`${label} · ${s.name}: ${format(v)}`)));
      });
    });
    svg.append(g);
    xLabels(svg, spec.labels, (i) => PAD.left + (i + 0.5) * slot, slot);
  });
}

/**
 * Lines over categories (days). spec as barChart; a null value leaves a gap. Every value
 * gets a <circle class="point">.
 */
export function lineChart(spec) {
  return figure(spec, (svg, width) => {
    const n = spec.labels.length;
    const format = spec.format ?? String;
    const max = Math.max(0, ...spec.series.flatMap((s) => s.values.filter((v) => v != null)));
    const { top, step } = niceScale(max);
    const y = yAxis(svg, width, top, step, format);
    const slot = (width - PAD.left - PAD.right) / Math.max(1, n);
    const x = (i) => PAD.left + (i + 0.5) * slot;
    spec.series.forEach((s, j) => {
      const g = el('g', { class: `line series-${j}` });
      let d = '';
      let pen = 'M';
      s.values.forEach((v, i) => {
        if (v == null) {
          pen = 'M';
          return;
        }
        d += `${pen}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
        pen = 'L';
        g.append(el('circle', {
          class: 'point', cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3.5, 'data-index': i, 'data-value': v,
        }, title(`${spec.labels[i]} · ${s.name}: ${format(v)}`)));
      });
      g.prepend(el('path', { d: d.trim(), fill: 'none' }));
      svg.append(g);
    });
    xLabels(svg, spec.labels, x, slot);
  });
}

/**
 * Horizontal bars, one per row (agents): spec { title, desc, labels, values, max, format,
 * note(i) for the text after a bar }. The height grows with the rows.
 */
export function hbarChart(spec) {
  const rowH = 28;
  const fig = figure(spec, (svg, width) => {
    const height = PAD.top + spec.labels.length * rowH + 8;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('height', height);
    const format = spec.format ?? String;
    const labelW = Math.min(140, Math.round(width * 0.3));
    const noteW = 90;
    const plotW = Math.max(40, width - labelW - noteW - PAD.right);
    const max = spec.max ?? Math.max(1, ...spec.values);
    const g = el('g', { class: 'bars' });
    spec.labels.forEach((label, i) => {
      const v = spec.values[i] ?? 0;
      const top = PAD.top + i * rowH;
      const shown = String(label).length > 18 ? `${String(label).slice(0, 17)}…` : String(label);
      g.append(el('text', { class: 'label', x: labelW - 8, y: top + 17, 'text-anchor': 'end' }, shown));
      g.append(el('rect', {
        class: 'bar series-0', x: labelW, y: top + 4, width: ((v / max) * plotW).toFixed(1), height: rowH - 10,
        'data-index': i, 'data-value': v,
      }, title(`${label}: ${format(v)}${spec.note ? ` (${spec.note(i)})` : ''}`)));
      g.append(el('text', { class: 'value', x: labelW + (v / max) * plotW + 6, y: top + 17 },
        `${format(v)}${spec.note ? ` · ${spec.note(i)}` : ''}`));
    });
    svg.append(g);
  });
  return fig;
}
