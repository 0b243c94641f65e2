// The ratings part of the Reports page: per agent (count, average, stars) and the newest
// comments, over the same days as the rest of the page, with a CSV download of the report.
import { h, fmtTime } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { api, errText } from './api.js';
import { agentName, toast } from './state.js';

const stars = (avg) => '★'.repeat(Math.round(avg)) + '☆'.repeat(5 - Math.round(avg));

/** The section: a table per agent, the comments, a CSV button. */
export async function ratingsSection(days) {
  const r = await api(`/reports/ratings?days=${days}`);
  const csv = h('button', {
    type: 'button', class: 'btn small', 'data-action': 'ratings-csv', text: t('ratings.csv'),
    onclick: () => download(days).catch((e) => toast(errText(e))),
  });
  const total = r.agents.reduce((n, a) => n + a.count, 0);
  return h('section', { class: 'ratings-report' },
    h('h2', { text: t('ratings.title') }),
    total === 0
      ? h('p', { class: 'card muted', text: t('ratings.none') })
      : h('div', { class: 'card' },
        h('table', { class: 'report ratings-by-agent' },
          h('thead', {}, h('tr', {}, ['ratings.agent', 'ratings.count', 'ratings.average']
            .map((k) => h('th', { scope: 'col', text: t(k) })))),
          h('tbody', {}, r.agents.map((a) => h('tr', {},
            h('th', { scope: 'row', text: a.agent_id == null ? t('ratings.bot') : (a.name ?? agentName(a.agent_id)) }),
            h('td', { text: String(a.count) }),
            h('td', { title: String(a.average) }, h('span', { class: 'stars', 'aria-hidden': 'true', text: stars(a.average) }),
              ` ${a.average.toFixed(2)}`))))),
        r.comments.length ? h('ul', { class: 'plain rating-comments' }, r.comments.map((c) => h('li', {},
          h('span', { class: 'stars', 'aria-label': t('thread.rated', { n: c.score }), text: stars(c.score) }),
          ' ', h('q', { text: c.comment }), ' ',
          h('a', { href: `#/c/${c.conversation_id}`, class: 'muted small', text: `#${c.conversation_id} · ${fmtTime(c.rated_at)}` }))))
          : null),
    h('div', { class: 'buttons' }, csv));
}

/** Fetches the CSV with the session's token and saves it through a blob link. */
async function download(days) {
  const blob = await api(`/reports/ratings?days=${days}&format=csv`);
  const a = h('a', { href: URL.createObjectURL(blob), download: `kefud-ratings-${days}d.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
