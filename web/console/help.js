// The console's own help (#/help): one short section per everyday task, in the console's
// language. Each topic is two i18n keys, help.TOPIC.title and help.TOPIC.body (paragraphs
// separated by blank lines), so a feature adds its topic to TOPICS and its text to i18n.js.
import { h } from '../shared/dom.js';
import { t } from '../shared/i18n.js';

const TOPICS = ['inbox', 'labels', 'contacts', 'ratings', 'customers', 'canned', 'hours', 'qr', 'cluster'];

export function showHelp(root) {
  root.replaceChildren(h('section', { class: 'page help' },
    h('h1', { text: t('nav.help') }),
    h('nav', { class: 'help-toc', 'aria-label': t('help.contents') },
      h('ul', { class: 'plain' }, TOPICS.map((k) => h('li', {}, h('a', { href: `#/help/${k}`, text: t(`help.${k}.title`) }))))),
    TOPICS.map((k) => h('section', { class: 'card help-topic', id: `help-${k}` },
      h('h2', { text: t(`help.${k}.title`) }),
      t(`help.${k}.body`).split('\n\n').map((p) => h('p', { text: p }))))));
  const topic = location.hash.split('/')[2];
  if (topic) root.querySelector(`#help-${CSS.escape(topic)}`)?.scrollIntoView();
}
