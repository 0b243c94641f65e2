// The numbers and words behind the ratings chart on the Reports page: per agent (count,
// average, stars) and the newest comments, each linking to its conversation.
import { h, fmtTime } from '../shared/dom.js';
import { t } from '../shared/i18n.js';
import { agentName } from './state.js';

const stars = (avg) => '★'.repeat(Math.round(avg)) + '☆'.repeat(5 - Math.round(avg));

/** The table per agent and the comments of a GET /reports/ratings answer. */
export function ratingDetails(r) {
  return h('div', { class: 'ratings-report' },
    h('div', { class: 'table-wrap' }, h('table', { class: 'report ratings-by-agent' },
      h('thead', {}, h('tr', {}, ['ratings.agent', 'ratings.count', 'ratings.average']
        .map((k) => h('th', { scope: 'col', text: t(k) })))),
      h('tbody', {}, r.agents.map((a) => h('tr', {},
        h('th', { scope: 'row', text: a.agent_id == null ? t('ratings.bot') : (a.name ?? agentName(a.agent_id)) }),
        h('td', { text: String(a.count) }),
        h('td', { title: String(a.average) }, h('span', { class: 'stars', 'aria-hidden': 'true', text: stars(a.average) }),
          ` ${a.average.toFixed(2)}`)))))),
    r.comments.length ? h('ul', { class: 'plain rating-comments', 'aria-label': t('ratings.comments') }, r.comments.map((c) => h('li', {},
      h('span', { class: 'stars', 'aria-label': t('thread.rated', { n: c.score }), text: stars(c.score) }),
      ' ', h('q', { text: c.comment }), ' ',
      h('a', { href: `#/c/${c.conversation_id}`, class: 'muted small', text: `#${c.conversation_id} · ${fmtTime(c.rated_at)}` }))))
      : null);
}
