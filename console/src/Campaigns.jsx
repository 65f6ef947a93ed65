// A mailbox's campaigns, read-only: the list, then one campaign's statistics (refreshed while it
// runs), the summary of its list's check, and its recipients page by page with their receipts.
import { useEffect, useRef, useState } from 'preact/hooks';
import { t, when, count, has } from './i18n.js';
import { api, box } from './api.js';
import { ErrorNote, kindName } from './ui.jsx';
import { href } from './route.js';

const STATS = ['total', 'waiting', 'to_send', 'sent', 'only_sent', 'accepted', 'delivered', 'delivery_failures', 'errors', 'warnings', 'cancelled'];
const OUTCOMES = ['failed', 'to_send', 'waiting', 'sent', 'only_sent', 'accepted', 'delivered', 'delivery_failures', 'warnings', 'errors', 'cancelled'];
const RUNNING = new Set(['validating', 'queuing', 'sending']);
const REFRESH_MS = 10_000;

const statusName = (status) => (has(`campStatus.${status}`) ? t(`campStatus.${status}`) : status || '');

function Progress({ counters }) {
  const total = counters.total || 0;
  const done = counters.delivered || 0;
  return (
    <span class="progress-cell">
      <progress max={Math.max(total, 1)} value={done} aria-label={t('camp.progress', { done: count(done), total: count(total) })} />{' '}
      {count(done)}/{count(total)}
    </span>
  );
}

export function CampaignList({ mailbox }) {
  const [rows, setRows] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);

  async function load(after) {
    setLoading(true);
    setError(null);
    try {
      const page = await api(box(mailbox, '/campaigns'), { query: { cursor: after } });
      setRows((before) => (after ? [...before, ...page.campaigns] : page.campaigns));
      setCursor(page.cursor);
    } catch (failure) {
      setError(failure);
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => {
    load(null);
    document.title = `${t('camp.title', { mailbox })} — pecflow`;
  }, [mailbox]);

  return (
    <main id="content">
      <p>
        <a href={href(['box', mailbox])}>← {t('common.back')}</a>
      </p>
      <h1 tabIndex={-1}>{t('camp.title', { mailbox })}</h1>
      <ErrorNote error={error} />
      {rows.length > 0 && (
        <table class="campaigns">
          <thead>
            <tr>
              <th scope="col">{t('camp.col.name')}</th>
              <th scope="col">{t('camp.col.status')}</th>
              <th scope="col">{t('camp.col.created')}</th>
              <th scope="col">{t('camp.col.progress')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.campaign_id}>
                <td data-label={t('camp.col.name')}>
                  <a href={href(['box', mailbox, 'campaigns', c.campaign_id])}>{c.name || c.campaign_id}</a>
                </td>
                <td data-label={t('camp.col.status')}>{statusName(c.status)}</td>
                <td data-label={t('camp.col.created')}>{when(c.created_at)}</td>
                <td data-label={t('camp.col.progress')}>
                  <Progress counters={c.counters || {}} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!loading && !error && rows.length === 0 && <p>{t('camp.none')}</p>}
      {loading && <p aria-live="polite">{t('common.loading')}</p>}
      {cursor && !loading && (
        <button type="button" onClick={() => load(cursor)}>
          {t('camp.more')}
        </button>
      )}
    </main>
  );
}

export function CampaignView({ mailbox, id }) {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  const [outcome, setOutcome] = useState('');
  const [people, setPeople] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [listError, setListError] = useState(null);
  const [loading, setLoading] = useState(true);
  const timer = useRef(null);

  async function loadStats() {
    try {
      const shown = await api(box(mailbox, `/campaigns/${encodeURIComponent(id)}`));
      setStats(shown);
      setError(null);
      clearTimeout(timer.current);
      if (RUNNING.has(shown.status)) timer.current = setTimeout(loadStats, REFRESH_MS);
    } catch (failure) {
      setError(failure);
    }
  }

  async function loadRecipients(after) {
    setLoading(true);
    setListError(null);
    try {
      const page = await api(box(mailbox, `/campaigns/${encodeURIComponent(id)}/recipients`), {
        query: { state: outcome || undefined, cursor: after },
      });
      setPeople((before) => (after ? [...before, ...page.recipients] : page.recipients));
      setCursor(page.cursor);
    } catch (failure) {
      setListError(failure);
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    loadStats();
    document.title = `${t('camp.detail', { name: id })} — pecflow`;
    return () => clearTimeout(timer.current);
  }, [mailbox, id]);
  useEffect(() => {
    loadRecipients(null);
  }, [mailbox, id, outcome]);

  const counters = (stats && stats.counters) || {};
  const validation = (stats && stats.validation) || null;
  return (
    <main id="content">
      <p>
        <a href={href(['box', mailbox, 'campaigns'])}>← {t('camp.back')}</a>
      </p>
      <h1 tabIndex={-1}>{t('camp.detail', { name: id })}</h1>
      <ErrorNote error={error} />
      {stats && (
        <>
          <p>
            <strong>{statusName(stats.status)}</strong> · {stats.mailbox}
          </p>
          <section aria-labelledby="stats-title">
            <h2 id="stats-title">{t('camp.stats')}</h2>
            <dl class="stats" data-testid="stats">
              {STATS.filter((key) => key in counters || key === 'total').map((key) => (
                <div key={key} class={`stat stat-${key}`}>
                  <dt>{t(`stat.${key}`)}</dt>
                  <dd>{count(counters[key] || 0)}</dd>
                </div>
              ))}
            </dl>
            <Progress counters={counters} />
            {RUNNING.has(stats.status) && <p class="help">{t('camp.updating')}</p>}
          </section>
          {validation && (
            <section aria-labelledby="validation-title">
              <h2 id="validation-title">{t('camp.validation')}</h2>
              <p>{t('camp.validRows', { valid: count(validation.valid_rows || 0), rows: count(validation.rows || 0) })}</p>
              {validation.invalid_rows > 0 && (
                <p>{t('camp.invalidRows', { invalid: count(validation.invalid_rows), errors: count(validation.error_count || 0) })}</p>
              )}
            </section>
          )}
          {(stats.problems || []).length > 0 && (
            <section aria-labelledby="problems-title">
              <h2 id="problems-title">{t('camp.problems')}</h2>
              <ul>
                {stats.problems.map((problem, i) => (
                  <li key={i}>{problem}</li>
                ))}
              </ul>
            </section>
          )}
        </>
      )}
      <section aria-labelledby="recipients-title">
        <h2 id="recipients-title">{t('camp.recipients')}</h2>
        <div class="field narrow">
          <label for="outcome">{t('camp.filter')}</label>
          <select id="outcome" value={outcome} onChange={(event) => setOutcome(event.currentTarget.value)}>
            <option value="">{t('camp.allRecipients')}</option>
            {OUTCOMES.map((key) => (
              <option key={key} value={key}>
                {t(`stat.${key}`)}
              </option>
            ))}
          </select>
        </div>
        <ErrorNote error={listError} />
        {people.length > 0 && (
          <table class="recipients">
            <thead>
              <tr>
                <th scope="col">{t('camp.col.row')}</th>
                <th scope="col">{t('camp.col.address')}</th>
                <th scope="col">{t('camp.col.outcome')}</th>
                <th scope="col">{t('camp.col.receipts')}</th>
              </tr>
            </thead>
            <tbody>
              {people.map((person) => (
                <tr key={`${person.row}-${person.address}`}>
                  <td data-label={t('camp.col.row')}>{person.row}</td>
                  <td data-label={t('camp.col.address')} class="from">
                    {person.address}
                  </td>
                  <td data-label={t('camp.col.outcome')}>
                    {person.shown}
                    {person.error && <div class="muted">{person.error}</div>}
                    {person.earlier && person.earlier.length > 0 && (
                      <div class="muted">{t('camp.attempts', { count: person.earlier.length })}</div>
                    )}
                  </td>
                  <td data-label={t('camp.col.receipts')}>
                    <ol class="receipts">
                      {person.receipts.map((receipt) => (
                        <li key={receipt.sha256}>
                          <a href={href(['box', mailbox, 'msg', receipt.sha256], { view: 'receipts' })}>{kindName(receipt.kind)}</a>{' '}
                          <time dateTime={receipt.at}>{when(receipt.at)}</time>
                        </li>
                      ))}
                    </ol>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {!loading && !listError && people.length === 0 && <p>{t('camp.noRecipients')}</p>}
        {loading && <p aria-live="polite">{t('common.loading')}</p>}
        {cursor && !loading && (
          <button type="button" onClick={() => loadRecipients(cursor)}>
            {t('camp.moreRecipients')}
          </button>
        )}
      </section>
    </main>
  );
}
