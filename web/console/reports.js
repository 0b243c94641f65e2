// Admin → Reports: messages per hour of the day, first-response and resolution times per day
// (with the table of medians and 90th percentiles), ratings per day and per agent with their
// comments; a period picker, local days at the browser's UTC offset, and a CSV download per
// report. The charts are drawn by charts.js.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api } from './api.js';
import { agentName } from './state.js';
import { run } from './forms.js';
import { ratingDetails } from './ratings.js';
import { barChart, lineChart, hbarChart } from './charts.js';

/** Seconds as "45 s", "3 min 05 s", "2 h 10 min". */
function duration(secs) {
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

const REPORT_DAYS = [7, 14, 30, 90];
let reportDays = 14;

/** Minutes east of UTC here, so the reports' days and hours are the agent's own. */
const utcOffset = () => -new Date().getTimezoneOffset();

/** Local today as YYYY-MM-DD. */
function localToday() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const reportPath = (name, extra = '') => `/reports/${name}?days=${reportDays}&utc_offset=${utcOffset()}${extra}`;

/** A "Download CSV" button: the report with ?format=csv, fetched with the session, saved. */
function csvButton(name) {
  const btn = h('button', {
    type: 'button', class: 'btn', text: t('reports.csv'), 'data-report': name,
    onclick: () => run(btn, async () => {
      const blob = await api(reportPath(name, '&format=csv'));
      const a = h('a', { href: URL.createObjectURL(blob), download: `kefud-${name}-${localToday()}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }, null),
  });
  return btn;
}

/** One report's card: heading, CSV button (when there is data), help, body. */
function reportCard(name, heading, help, content, withCsv = true) {
  return h('section', { class: 'card report-card', 'data-report': name, 'aria-label': heading },
    h('header', { class: 'report-head' }, h('h3', { text: heading }), withCsv ? csvButton(name) : null),
    help ? h('p', { class: 'muted small', text: help }) : null,
    content);
}

/** A scale for durations in seconds: values and an axis format in s, min or h. */
function durationScale(maxSecs) {
  const [div, unit] = maxSecs >= 7200 ? [3600, 'h'] : maxSecs >= 120 ? [60, 'min'] : [1, 's'];
  return {
    value: (secs) => (secs == null ? null : Math.round((secs / div) * 10) / 10),
    format: (v) => `${v} ${unit}`,
  };
}

export async function reports(body) {
  const select = h('select', {
    class: 'input select', 'aria-label': t('reports.period'),
    onchange: () => { reportDays = Number(select.value); reports(body); },
  }, REPORT_DAYS.map((d) => h('option', { value: d, selected: d === reportDays, text: t('reports.last_days', { n: d }) })));
  const [hourly, times, ratings] = await Promise.all([
    api(reportPath('hourly')),
    api(reportPath('response-times')),
    api(reportPath('ratings')).catch((e) => {
      if (e.status === 404) return null;
      throw e;
    }),
  ]);
  body.replaceChildren(
    h('h2', { text: t('reports.heading') }),
    h('p', { class: 'muted', text: t('reports.intro') }),
    h('div', { class: 'toolbar' }, h('label', { class: 'field inline' }, h('span', { text: t('reports.period') }), select)),
    hourlyCard(hourly),
    responseCard(times.days),
    ratingsCard(ratings));
}

function hourlyCard(r) {
  const total = r.hours.reduce((n, x) => n + x.customer + x.agent, 0);
  const content = total === 0
    ? h('p', { class: 'muted empty', text: t('reports.hourly_empty') })
    : barChart({
      title: t('reports.hourly'),
      desc: t('reports.hourly_desc', { days: r.days, since: r.since }),
      testId: 'chart-hourly',
      labels: r.hours.map((x) => String(x.hour).padStart(2, '0')),
      series: [
        { name: t('reports.customer_messages'), values: r.hours.map((x) => x.customer) },
        { name: t('reports.agent_messages'), values: r.hours.map((x) => x.agent) },
      ],
    });
  return reportCard('hourly', t('reports.hourly'), t('reports.hourly_help'), content, total > 0);
}

function responseCard(days) {
  if (days.length === 0) {
    return reportCard('response-times', t('reports.title'), null, h('p', { class: 'muted empty', text: t('reports.empty') }), false);
  }
  const median = (p) => p?.median_secs ?? null;
  const max = Math.max(0, ...days.flatMap((d) => [median(d.first_response), median(d.resolution)]).filter((v) => v != null));
  const scale = durationScale(max);
  const chart = lineChart({
    title: t('reports.title'),
    desc: t('reports.times_desc'),
    testId: 'chart-times',
    labels: days.map((d) => d.day.slice(5)),
    format: scale.format,
    series: [
      { name: t('reports.first_response'), values: days.map((d) => scale.value(median(d.first_response))) },
      { name: t('reports.resolution'), values: days.map((d) => scale.value(median(d.resolution))) },
    ],
  });
  const cell = (p) => h('td', { text: p ? `${duration(p.median_secs)} / ${duration(p.p90_secs)} (${p.count})` : '–' });
  const rows = days.slice().reverse().map((d) => h('tr', {},
    h('th', { scope: 'row', text: d.day }),
    h('td', { text: String(d.conversations) }),
    cell(d.time_to_assignment), cell(d.first_response), cell(d.resolution)));
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'report' },
    h('thead', {}, h('tr', {},
      ['reports.day', 'reports.conversations', 'reports.assignment', 'reports.first_response', 'reports.resolution']
        .map((k) => h('th', { scope: 'col', text: t(k) })))),
    h('tbody', {}, rows)));
  return reportCard('response-times', t('reports.title'), t('reports.help'), [chart, table]);
}

/** Ratings per day and per agent (GET /reports/ratings); "no ratings yet" when none. */
function ratingsCard(r) {
  const days = r?.days ?? [];
  const agentsList = r?.agents ?? [];
  if (days.length === 0 && agentsList.length === 0) {
    return reportCard('ratings', t('reports.ratings'), null, h('p', { class: 'muted empty', text: t('reports.ratings_empty') }), false);
  }
  const avg = (v) => Math.round(v * 100) / 100;
  return reportCard('ratings', t('reports.ratings'), t('reports.ratings_help'), [
    days.length ? barChart({
      title: t('reports.ratings_per_day'),
      desc: t('reports.ratings_desc'),
      testId: 'chart-ratings-days',
      labels: days.map((d) => d.day.slice(5)),
      format: (v) => String(avg(v)),
      series: [{ name: t('reports.average'), values: days.map((d) => avg(d.average)) }],
    }) : null,
    agentsList.length ? hbarChart({
      title: t('reports.ratings_per_agent'),
      desc: t('reports.ratings_desc'),
      testId: 'chart-ratings-agents',
      labels: agentsList.map((a) => (a.agent_id == null ? t('ratings.bot') : a.name ?? agentName(a.agent_id))),
      values: agentsList.map((a) => avg(a.average)),
      max: 5,
      format: (v) => String(v),
      note: (i) => t('reports.ratings_n', { n: agentsList[i].count }),
    }) : null,
    ratingDetails(r),
  ]);
}
