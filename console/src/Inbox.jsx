// The mailboxes a person may see, and one mailbox's messages: views by handling ("da gestire"
// first), the API's filters and word search, and cursor paging ("Altri messaggi").
import { useEffect, useRef, useState } from 'preact/hooks';
import { t, when, count } from './i18n.js';
import { api, box } from './api.js';
import { ErrorNote, Badges, Handling, kindName, subjectOf, senderOf, RECEIPT_KINDS } from './ui.jsx';
import { href } from './route.js';

export function Mailboxes({ me }) {
  useEffect(() => {
    document.title = `${t('mailboxes.title')} — pecflow`;
  });
  return (
    <main id="content">
      <h1 tabIndex={-1}>{t('mailboxes.title')}</h1>
      {me.mailboxes.length === 0 ? (
        <p>{t('mailboxes.none')}</p>
      ) : (
        <ul class="cards">
          {me.mailboxes.map((access) => (
            <li key={access.mailbox} class="card">
              <a href={href(['box', access.mailbox])} class="card-title" aria-label={t('mailboxes.open', { mailbox: access.mailbox })}>
                {access.mailbox}
              </a>
              <p>{t('mailboxes.role', { role: t(`role.${access.role}`) })}</p>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}

// the views: each one a query of the API; "da gestire" is where a mailbox opens
export const VIEWS = [
  ['open', 'view.open', { handling: 'da-gestire' }],
  ['in-charge', 'view.inCharge', { handling: 'in-carico' }],
  ['mine', 'view.mine', null], // holder = me, set below
  ['handled', 'view.handled', { handling: 'gestito' }],
  ['all', 'view.all', {}],
  ['receipts', 'view.receipts', { receipts: 'true' }],
  ['bin', 'view.bin', { bin: 'true' }],
];

const KINDS = ['posta-certificata', 'anomalia', 'posta-ordinaria', ...RECEIPT_KINDS];

/** Midnight in Rome of a yyyy-mm-dd day, as an ISO 8601 instant (end: the next midnight). */
export function romeMidnight(dayText, end = false) {
  const [y, m, d] = dayText.split('-').map(Number);
  const guess = Date.UTC(y, m - 1, d + (end ? 1 : 0));
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/Rome',
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).formatToParts(new Date(guess));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const shown = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'));
  return new Date(guess - (shown - guess)).toISOString();
}

export function MessageList({ me, mailbox, role, params, navigate }) {
  const view = params.view || 'open';
  const [rows, setRows] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);
  const heading = useRef(null);
  const views = VIEWS.filter(([name]) => name !== 'bin' || role === 'admin');

  function query(after) {
    const chosen = VIEWS.find(([name]) => name === view) || VIEWS[0];
    const base = chosen[2] || { holder: me.username };
    return {
      ...base,
      q: params.q,
      kind: params.kind,
      sdi: params.sdi ? 'true' : undefined,
      received_from: params.from ? romeMidnight(params.from) : undefined,
      received_to: params.to ? romeMidnight(params.to, true) : undefined,
      size: 50,
      cursor: after,
    };
  }

  async function load(after) {
    setLoading(true);
    setError(null);
    try {
      const page = await api(box(mailbox, '/messages'), { query: query(after) });
      setRows((before) => (after ? [...before, ...page.messages] : page.messages));
      setCursor(page.cursor);
    } catch (failure) {
      setError(failure);
      if (!after) setRows([]);
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    load(null);
  }, [mailbox, view, params.q, params.kind, params.sdi, params.from, params.to]);
  useEffect(() => {
    document.title = `${t('list.title', { mailbox })} — pecflow`;
  });
  useEffect(() => {
    // a new mailbox or view: the reader starts at its heading
    if (heading.current) heading.current.focus();
  }, [mailbox, view]);

  function filter(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const next = { view };
    for (const name of ['q', 'kind', 'from', 'to']) {
      const value = String(form.get(name) || '').trim();
      if (value) next[name] = value;
    }
    if (form.get('sdi')) next.sdi = '1';
    navigate(['box', mailbox], next);
  }

  return (
    <main id="content">
      <h1 tabIndex={-1} ref={heading} id="list-title">
        {t('list.title', { mailbox })}
      </h1>
      {(role === 'manager' || role === 'admin') && (
        <p>
          <a href={href(['box', mailbox, 'campaigns'])}>{t('nav.campaigns')}</a>
        </p>
      )}
      <nav aria-label={t('list.views')} class="tabs">
        {views.map(([name, label]) => (
          <a key={name} href={href(['box', mailbox], { view: name })} aria-current={name === view ? 'page' : undefined}>
            {t(label)}
          </a>
        ))}
      </nav>
      <form class="filters" onSubmit={filter} role="search" aria-label={t('filter.title')}>
        <div class="field grow">
          <label for="f-q">{t('filter.words')}</label>
          <input id="f-q" name="q" type="search" defaultValue={params.q || ''} maxLength={200} />
        </div>
        <div class="field">
          <label for="f-kind">{t('filter.kind')}</label>
          <select id="f-kind" name="kind" defaultValue={params.kind || ''}>
            <option value="">{t('filter.anyKind')}</option>
            {KINDS.map((kind) => (
              <option key={kind} value={kind}>
                {kindName(kind)}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-from">{t('filter.from')}</label>
          <input id="f-from" name="from" type="date" defaultValue={params.from || ''} />
        </div>
        <div class="field">
          <label for="f-to">{t('filter.to')}</label>
          <input id="f-to" name="to" type="date" defaultValue={params.to || ''} />
        </div>
        <div class="field check">
          <input id="f-sdi" name="sdi" type="checkbox" defaultChecked={Boolean(params.sdi)} />
          <label for="f-sdi">{t('filter.sdi')}</label>
        </div>
        <div class="field buttons">
          <button type="submit" class="primary">
            {t('filter.apply')}
          </button>
          <a class="button" href={href(['box', mailbox], { view })}>
            {t('filter.clear')}
          </a>
        </div>
      </form>
      <ErrorNote error={error} />
      {rows.length > 0 && (
        <table class="messages" aria-labelledby="list-title">
          <thead>
            <tr>
              <th scope="col">{t('col.kind')}</th>
              <th scope="col">{t('col.subject')}</th>
              <th scope="col">{t('col.from')}</th>
              <th scope="col">{t('col.received')}</th>
              <th scope="col">{t('col.handling')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.sha256} class={row.handling === 'da-gestire' && !row.deleted ? 'open' : ''}>
                <td data-label={t('col.kind')}>
                  <Badges row={row} />
                </td>
                <td data-label={t('col.subject')} class="subject">
                  <a href={href(['box', mailbox, 'msg', row.sha256], { view })}>{subjectOf(row) || t('list.noSubject')}</a>
                  {row.attachments ? <span class="muted"> · {t('list.attachments', { count: row.attachments })}</span> : null}
                </td>
                <td data-label={t('col.from')} class="from">
                  {senderOf(row)}
                </td>
                <td data-label={t('col.received')}>
                  <time dateTime={row.received_at}>{when(row.received_at)}</time>
                </td>
                <td data-label={t('col.handling')}>
                  <Handling row={row} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!loading && !error && rows.length === 0 && <p class="empty">{t('list.empty')}</p>}
      <p class="list-foot" aria-live="polite">
        {loading ? t('common.loading') : rows.length > 0 ? t('list.count', { count: count(rows.length) }) : ''}
      </p>
      {cursor && !loading && (
        <button type="button" onClick={() => load(cursor)}>
          {t('list.more')}
        </button>
      )}
    </main>
  );
}
