// A mailbox's campaigns: the list (and the wizard's "new campaign"), then one campaign's panel:
// its statistics (refreshed while it runs; in rows too for a grouped campaign), a chart over time,
// the expected end from the quota, pause, resume, cancel, resend the failed, confirm a checked
// campaign, the outcome's export, and its recipients page by page with their receipts.
import { useEffect, useRef, useState } from 'preact/hooks';
import { t, when, count, has } from './i18n.js';
import { api, box, campaignPath } from './api.js';
import { ErrorNote, Notice, kindName } from './ui.jsx';
import { href } from './route.js';
import { Chart } from './Chart.jsx';
import { quotaText } from './CampaignParts.jsx';

const STATS = ['total', 'waiting', 'to_send', 'sent', 'only_sent', 'accepted', 'delivered', 'delivery_failures', 'errors', 'warnings', 'cancelled'];
const OUTCOMES = ['failed', 'to_send', 'waiting', 'sent', 'only_sent', 'accepted', 'delivered', 'delivery_failures', 'warnings', 'errors', 'cancelled'];
const RUNNING = new Set(['validating', 'queuing', 'sending']);
const REFRESH_MS = 5_000;
const MAY_ACT = new Set(['manager', 'admin']); // the roles that send campaigns (the API checks it too)

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
      <p>
        <a class="button primary" href={href(['box', mailbox, 'campaigns', 'new'])}>
          {t('wiz.new')}
        </a>
      </p>
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

function Figures({ counters, label, testid }) {
  return (
    <dl class="stats" data-testid={testid} aria-label={label}>
      {STATS.filter((key) => key in counters || key === 'total').map((key) => (
        <div key={key} class={`stat stat-${key}`}>
          <dt>{t(`stat.${key}`)}</dt>
          <dd>{count(counters[key] || 0)}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The acts on a campaign its state allows, for the roles that may act (none for the others). */
function Actions({ mailbox, id, stats, role, onDone }) {
  const [busy, setBusy] = useState(null);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [asking, setAsking] = useState(false);
  const [link, setLink] = useState(null);
  if (!MAY_ACT.has(role)) return null;
  const status = stats.status;
  const counters = stats.counters || {};
  const failed = (counters.delivery_failures || 0) + (counters.errors || 0);

  async function act(action) {
    setBusy(action);
    setError(null);
    setDone(null);
    setAsking(false);
    try {
      const answer = await api(campaignPath(mailbox, id, '/actions'), { method: 'POST', body: { action } });
      setDone(action === 'resend' ? t('cact.resent', { count: count(answer.new_attempts || 0) }) : t(`cact.done.${action}`));
      onDone();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(null);
    }
  }

  async function exportCsv() {
    setBusy('export');
    setError(null);
    try {
      setLink((await api(campaignPath(mailbox, id, '/export'))).url);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(null);
    }
  }

  const button = (action, primary = false) => (
    <button type="button" class={primary ? 'primary' : ''} disabled={!!busy} onClick={() => act(action)}>
      {t(`cact.${action}`)}
    </button>
  );
  return (
    <section aria-labelledby="acts-title" class="acts">
      <h2 id="acts-title">{t('cact.title')}</h2>
      {status === 'validated' && <p>{t('cact.waitingConfirm')}</p>}
      <div class="buttons">
        {status === 'validated' && button('confirm', true)}
        {['sending', 'queuing'].includes(status) && button('pause')}
        {status === 'paused' && button('resume', true)}
        {failed > 0 && ['sending', 'completed', 'paused'].includes(status) && button('resend')}
        {['sending', 'queuing', 'paused'].includes(status) &&
          (asking ? (
            <>
              <span role="alert">{t('cact.cancelSure')}</span>
              <button type="button" class="danger" disabled={!!busy} onClick={() => act('cancel')}>
                {t('cact.cancelYes')}
              </button>
              <button type="button" onClick={() => setAsking(false)}>
                {t('cact.cancelNo')}
              </button>
            </>
          ) : (
            <button type="button" onClick={() => setAsking(true)}>
              {t('cact.cancel')}
            </button>
          ))}
        {!['validating', 'invalid'].includes(status) && (
          <button type="button" disabled={!!busy} onClick={exportCsv}>
            {t('cact.export')}
          </button>
        )}
        {link && (
          <a href={link} download>
            {t('cact.download')}
          </a>
        )}
      </div>
      {busy && <p aria-live="polite">{t('common.loading')}</p>}
      {done && <Notice>{done}</Notice>}
      <ErrorNote error={error} />
    </section>
  );
}

export function CampaignView({ mailbox, id, role }) {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  const [outcome, setOutcome] = useState('');
  const [people, setPeople] = useState([]);
  const [cursor, setCursor] = useState(null);
  const [listError, setListError] = useState(null);
  const [loading, setLoading] = useState(true);
  const timer = useRef(null);
  const paged = useRef(false); // more pages read: a refresh would lose them
  const filter = useRef(''); // the filter now (a refresh started by an older render reads it)
  filter.current = outcome;
  const seen = useRef(''); // the counters last shown: the recipients' first page follows them

  async function loadStats() {
    try {
      const shown = await api(box(mailbox, `/campaigns/${encodeURIComponent(id)}`));
      setStats(shown);
      const now = JSON.stringify(shown.counters || {});
      if (seen.current && now !== seen.current && !paged.current) loadRecipients(null);
      seen.current = now;
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
        query: { state: filter.current || undefined, cursor: after },
      });
      setPeople((before) => (after ? [...before, ...page.recipients] : page.recipients));
      setCursor(page.cursor);
      paged.current = !!after;
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
      <h1 tabIndex={-1}>{t('camp.detail', { name: (stats && stats.name) || id })}</h1>
      <ErrorNote error={error} />
      {stats && (
        <>
          <p>
            <strong data-testid="campaign-status">{statusName(stats.status)}</strong> · {stats.mailbox}
            {stats.name && <span class="muted"> · {id}</span>}
          </p>
          {stats.purpose && <p>{t('camp.purpose', { purpose: stats.purpose })}</p>}
          <Actions mailbox={mailbox} id={id} stats={stats} role={role} onDone={loadStats} />
          <section aria-labelledby="stats-title">
            <h2 id="stats-title">{t('camp.stats')}</h2>
            <div class={stats.rows ? 'columns-even' : ''}>
              <div>
                {stats.rows && <h3>{t('camp.byMessage')}</h3>}
                <Figures counters={counters} testid="stats" label={t('camp.byMessage')} />
              </div>
              {stats.rows && (
                <div>
                  <h3>{t('camp.byRow', { column: stats.group_by })}</h3>
                  <Figures counters={stats.rows} testid="row-stats" label={t('camp.byRow', { column: stats.group_by })} />
                </div>
              )}
            </div>
            <Progress counters={counters} />
            {stats.expected_end && (
              <p data-testid="expected-end">
                {t('camp.expectedEnd', { when: when(stats.expected_end) })}
                {stats.quota && <span class="muted"> ({quotaText(stats.quota)})</span>}
              </p>
            )}
            {RUNNING.has(stats.status) && <p class="help">{t('camp.updating')}</p>}
            <h3>{t('chart.title')}</h3>
            <Chart series={stats.series} total={counters.total || 0} />
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
