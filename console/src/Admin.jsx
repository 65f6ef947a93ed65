// Administration, for the admins of a mailbox only (the API refuses the others anyway): the
// mailboxes they administer with their health, adding a mailbox (its logins tried first), and the
// people of each mailbox (add, role, disable/enable).
import { useEffect, useState } from 'preact/hooks';
import { t, when, count } from './i18n.js';
import { api, box } from './api.js';
import { ErrorNote, Notice } from './ui.jsx';
import { href } from './route.js';

const ROLES = ['viewer', 'operator', 'manager', 'admin'];

function RoleOptions({ chosen }) {
  return ROLES.map((r) => (
    <option key={r} value={r} selected={r === chosen}>
      {t(`role.${r}`)}
    </option>
  ));
}

/** A quota preset by its provider's limits (a custom one, e.g. 100/1h, as written). */
const presetName = (preset) => (PRESETS.includes(preset) ? t(`admin.presetName.${preset}`) : preset);

/** The sending window in words: "ogni 20 minuti", "al giorno (giorni di calendario)". */
function windowName(quota) {
  if (quota.timezone) return t('admin.window.day');
  const s = quota.window_seconds;
  const [n, unit] = s % 86400 === 0 ? [s / 86400, 'days'] : s % 3600 === 0 ? [s / 3600, 'hours'] : s % 60 === 0 ? [s / 60, 'minutes'] : [s, 'seconds'];
  if (n === 1) return t(quota.rolling ? 'admin.window.rollingOne' : 'admin.window.fixedOne', { unit: t(`admin.unitOne.${unit}`) });
  return t(quota.rolling ? 'admin.window.rolling' : 'admin.window.fixed', { n: count(n), unit: t(`admin.unit.${unit}`) });
}
const PRESETS = ['aruba', 'legalmail', 'gmail'];

/** The mailboxes a person administers (from /me). */
export const administered = (me) => me.mailboxes.filter((m) => m.role === 'admin').map((m) => m.mailbox);
export const isAdmin = (me) => administered(me).length > 0;

/** An error of the API in the office's words: the mailbox routes answer in Italian (a refused
 * login check says which server and why), so their sentence is shown as it is; a username already
 * taken points to the form for people already registered. */
function Problem({ error, own = false }) {
  const body = (error && error.body) || {};
  let text = null;
  if (error && own && (error.status === 400 || error.status === 409) && body.message) text = body.message;
  else if (error && error.status === 400 && /already a person called (\S+)/.test(body.message || ''))
    text = t('admin.personExists', { name: body.message.match(/already a person called (\S+)/)[1] });
  if (text === null) return <ErrorNote error={error} />;
  return (
    <div class="note note-error" role="alert">
      <p>{text}</p>
    </div>
  );
}

function useTitle(text) {
  useEffect(() => {
    document.title = `${text} — pecflow`;
  }, [text]);
}

function Back() {
  return (
    <p>
      <a href={href(['admin'])}>← {t('admin.back')}</a>
    </p>
  );
}

export function AdminHome({ me, params, navigate }) {
  const mine = administered(me);
  const chosen = mine.includes(params.box) ? params.box : mine[0];
  const [mailboxes, setMailboxes] = useState(null);
  const [error, setError] = useState(null);
  useTitle(t('admin.title'));
  useEffect(() => {
    api('/mailboxes').then(setMailboxes, setError);
  }, []);

  return (
    <main id="content">
      <h1 tabIndex={-1}>{t('admin.title')}</h1>
      <section aria-labelledby="boxes-title">
        <h2 id="boxes-title">{t('admin.mailboxes')}</h2>
        <Problem error={error} />
        {mailboxes && (
          <table class="admin-boxes">
            <thead>
              <tr>
                <th scope="col">{t('admin.col.mailbox')}</th>
                <th scope="col">{t('admin.col.state')}</th>
                <th scope="col">{t('admin.col.lastPoll')}</th>
                <th scope="col">{t('admin.col.preset')}</th>
              </tr>
            </thead>
            <tbody>
              {mailboxes.map((m) => (
                <tr key={m.address}>
                  <td data-label={t('admin.col.mailbox')} class="from">
                    <a href={href(['admin', 'box', m.address])}>{m.address}</a>
                  </td>
                  <td data-label={t('admin.col.state')}>
                    <PollState mailbox={m} />
                  </td>
                  <td data-label={t('admin.col.lastPoll')}>{m.last_poll_at ? when(m.last_poll_at) : t('admin.never')}</td>
                  <td data-label={t('admin.col.preset')}>{presetName(m.quota_preset)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <p>
          <a class="button" href={href(['admin', 'new-mailbox'])}>
            {t('admin.addMailbox')}
          </a>
        </p>
      </section>
      <People me={me} mailbox={chosen} mine={mine} onChoose={(next) => navigate(['admin'], { box: next })} />
    </main>
  );
}

function PollState({ mailbox }) {
  if (!mailbox.enabled) return <span class="state">{t('admin.disabled')}</span>;
  if (mailbox.last_error) return <span class="state state-bad">{t('admin.failing')}</span>;
  if (mailbox.last_poll_at) return <span class="state state-ok">{t('admin.ok')}</span>;
  return <span class="state">{t('admin.neverPolled')}</span>;
}

function People({ me, mailbox, mine, onChoose }) {
  const [people, setPeople] = useState(null);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);

  async function load() {
    try {
      setPeople(await api('/people', { query: { mailbox } }));
    } catch (failure) {
      setError(failure);
    }
  }
  useEffect(() => {
    setPeople(null);
    setError(null);
    setDone(null);
    load();
  }, [mailbox]);

  async function act(work, said) {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await work();
      setDone(said);
      await load();
      return true;
    } catch (failure) {
      setError(failure);
      return false;
    } finally {
      setBusy(false);
    }
  }
  const role = (username, next) =>
    act(() => api(`/people/${encodeURIComponent(username)}/roles/${encodeURIComponent(mailbox)}`, { method: 'PUT', body: { role: next } }),
      next ? t('admin.roleGiven', { name: username, role: t(`role.${next}`) }) : t('admin.roleTaken', { name: username }));
  const toggle = (person) =>
    act(() => api(`/people/${encodeURIComponent(person.username)}/${person.enabled ? 'disable' : 'enable'}`, { method: 'POST' }),
      t(person.enabled ? 'admin.disabledDone' : 'admin.enabledDone', { name: person.username }));

  async function add(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = Object.fromEntries(new FormData(form));
    const ok = await act(async () => {
      await api('/people', { method: 'POST', body: { username: data.username, email: data.email, name: data.name } });
      await api(`/people/${encodeURIComponent(data.username.toLowerCase())}/roles/${encodeURIComponent(mailbox)}`, { method: 'PUT', body: { role: data.role } });
    }, t('admin.personAdded', { name: data.username, role: t(`role.${data.role}`) }));
    if (ok) form.reset();
  }

  async function grant(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = Object.fromEntries(new FormData(form));
    if (await role(data.username.trim().toLowerCase(), data.role)) form.reset();
  }

  return (
    <section aria-labelledby="people-title">
      <h2 id="people-title">{t('admin.people', { mailbox })}</h2>
      {mine.length > 1 && (
        <div class="field narrow">
          <label for="admin-box">{t('admin.chooseMailbox')}</label>
          <select id="admin-box" value={mailbox} onChange={(event) => onChoose(event.currentTarget.value)}>
            {mine.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </div>
      )}
      <Problem error={error} />
      {done && <Notice>{done}</Notice>}
      {people && (
        <table class="admin-people">
          <thead>
            <tr>
              <th scope="col">{t('admin.col.person')}</th>
              <th scope="col">{t('admin.col.role')}</th>
              <th scope="col">{t('admin.col.account')}</th>
            </tr>
          </thead>
          <tbody>
            {people.map((person) => (
              <tr key={person.username} data-testid={`person-${person.username}`}>
                <td data-label={t('admin.col.person')}>
                  <strong>{person.name || person.username}</strong>
                  <div class="muted">
                    {person.username} · {person.email}
                  </div>
                </td>
                <td data-label={t('admin.col.role')}>
                  <div class="buttons">
                    <label class="visually-hidden" for={`role-${person.username}`}>
                      {t('admin.roleOf', { name: person.username })}
                    </label>
                    <select id={`role-${person.username}`} class="inline" value={person.roles[mailbox]} disabled={busy || person.username === me.username}
                      onChange={(event) => role(person.username, event.currentTarget.value)}>
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {t(`role.${r}`)}
                        </option>
                      ))}
                    </select>
                    {person.username !== me.username && (
                      <button type="button" disabled={busy} onClick={() => role(person.username, null)}>
                        {t('admin.revoke')}
                        <span class="visually-hidden"> {person.username}</span>
                      </button>
                    )}
                  </div>
                </td>
                <td data-label={t('admin.col.account')}>
                  <span class={person.enabled ? 'state state-ok' : 'state state-bad'}>{t(person.enabled ? 'admin.active' : 'admin.inactive')}</span>{' '}
                  {person.username !== me.username && (
                    <button type="button" disabled={busy} onClick={() => toggle(person)}>
                      {t(person.enabled ? 'admin.disable' : 'admin.enable')}
                      <span class="visually-hidden"> {person.username}</span>
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="columns admin-forms">
        <form class="stack" onSubmit={add} aria-labelledby="add-person-title">
          <h3 id="add-person-title">{t('admin.addPerson')}</h3>
          <p class="help">{t('admin.addPersonHelp')}</p>
          <label for="new-username">{t('admin.username')}</label>
          <input id="new-username" name="username" required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{1,62}" autocomplete="off" />
          <label for="new-email">{t('admin.email')}</label>
          <input id="new-email" name="email" type="email" required autocomplete="off" />
          <label for="new-name">{t('admin.name')}</label>
          <input id="new-name" name="name" autocomplete="off" />
          <label for="new-role">{t('admin.role')}</label>
          <select id="new-role" name="role">
            <RoleOptions chosen="operator" />
          </select>
          <button type="submit" class="primary" disabled={busy}>
            {t('admin.addPersonSubmit')}
          </button>
        </form>
        <form class="stack" onSubmit={grant} aria-labelledby="grant-title">
          <h3 id="grant-title">{t('admin.grant')}</h3>
          <p class="help">{t('admin.grantHelp')}</p>
          <label for="grant-username">{t('admin.username')}</label>
          <input id="grant-username" name="username" required autocomplete="off" />
          <label for="grant-role">{t('admin.role')}</label>
          <select id="grant-role" name="role">
            <RoleOptions chosen="viewer" />
          </select>
          <button type="submit" disabled={busy}>
            {t('admin.grantSubmit')}
          </button>
        </form>
      </div>
    </section>
  );
}

export function MailboxHealth({ mailbox, added }) {
  const [health, setHealth] = useState(null);
  const [held, setHeld] = useState(null);
  const [error, setError] = useState(null);
  useTitle(t('admin.health', { mailbox }));
  useEffect(() => {
    setHealth(null);
    setHeld(null);
    api(box(mailbox, '/health')).then(setHealth, setError);
    api(box(mailbox, '/quarantine')).then(setHeld, setError);
  }, [mailbox]);
  const m = health && health.mailbox;
  const quota = health && health.quota;
  return (
    <main id="content">
      <Back />
      <h1 tabIndex={-1}>{t('admin.health', { mailbox })}</h1>
      {added && <Notice>{t('admin.mailboxAdded', { mailbox })}</Notice>}
      <Problem error={error} />
      {health && (
        <>
          <p>
            <PollState mailbox={m} />
          </p>
          {m.last_error && (
            <div class="note note-error" role="status">
              <p>{t('admin.lastError', { when: when(health.last_error_at), kind: t(`admin.kind.${health.error_kind || 'protocol'}`) })}</p>
              <p class="detail">{m.last_error}</p>
            </div>
          )}
          <dl class="stats" data-testid="health">
            <div class="stat">
              <dt>{t('admin.lastPoll')}</dt>
              <dd class="small">{m.last_poll_at ? when(m.last_poll_at) : t('admin.never')}</dd>
            </div>
            <div class="stat">
              <dt>{t('admin.lastSuccess')}</dt>
              <dd class="small">{health.last_success_at ? when(health.last_success_at) : t('admin.never')}</dd>
            </div>
            <div class="stat">
              <dt>{t('admin.quota', { window: windowName(quota) })}</dt>
              <dd>
                {count(quota.used)} / {count(quota.limit)}
              </dd>
            </div>
            <div class="stat">
              <dt>{t('admin.toHandle')}</dt>
              <dd>{count(health.to_handle)}</dd>
            </div>
            <div class="stat">
              <dt>{t('admin.space')}</dt>
              <dd>{health.space_used_percent == null ? '—' : `${count(Math.round(health.space_used_percent))}%`}</dd>
            </div>
            <div class="stat">
              <dt>{t('admin.quarantined')}</dt>
              <dd>{count(health.quarantined)}</dd>
            </div>
          </dl>
          {held && <Quarantine mailbox={mailbox} held={held} />}
          <dl class="facts">
            <dt>{t('admin.imap')}</dt>
            <dd>{m.imap}</dd>
            <dt>{t('admin.smtp')}</dt>
            <dd>{m.smtp}</dd>
            <dt>{t('admin.login')}</dt>
            <dd>{m.login}</dd>
            <dt>{t('admin.preset')}</dt>
            <dd>{presetName(m.quota_preset)}</dd>
            <dt>{t('admin.saturation')}</dt>
            <dd>{t(`admin.sat.${m.saturation}`)}</dd>
          </dl>
        </>
      )}
    </main>
  );
}

/** The messages held in quarantine: kept and recorded, each with why, newest first. */
function Quarantine({ mailbox, held }) {
  if (!held.length) return <p data-testid="quarantine">{t('admin.quarantineNone')}</p>;
  return (
    <section data-testid="quarantine" aria-labelledby="quarantine-title">
      <h2 id="quarantine-title">{t('admin.quarantineTitle')}</h2>
      <p class="small">{t('admin.quarantineHelp')}</p>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">{t('col.received')}</th>
            <th scope="col">{t('col.from')}</th>
            <th scope="col">{t('col.subject')}</th>
            <th scope="col">{t('admin.quarantineWhy')}</th>
          </tr>
        </thead>
        <tbody>
          {held.map((m) => (
            <tr key={m.sha256}>
              <td data-label={t('col.received')}>{m.received_at ? when(m.received_at) : '—'}</td>
              <td data-label={t('col.from')}>{m.sender || '—'}</td>
              <td data-label={t('col.subject')}>
                {m.stage === 'rules' || m.stage === 'reconcile' ? (
                  <a href={href(['box', mailbox, 'msg', m.sha256])}>{m.subject || t('list.noSubject')}</a>
                ) : (
                  m.subject || t('list.noSubject')
                )}
              </td>
              <td data-label={t('admin.quarantineWhy')}>
                {t(`admin.stage.${m.stage || 'fetch'}`)}: {m.reason}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function AddMailbox({ navigate, onAdded }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [mode, setMode] = useState('never');
  useTitle(t('admin.addMailbox'));

  async function submit(event) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(event.currentTarget));
    const saturation = { mode };
    if (mode === 'after-days') saturation.days = Number(data.days);
    if (mode === 'above-quota') Object.assign(saturation, { percent: Number(data.percent), expunge: true });
    const body = {
      address: data.address.trim(),
      username: data.username.trim() || null,
      password: data.password,
      imap_host: data.imap_host.trim(),
      imap_port: Number(data.imap_port),
      smtp_host: data.smtp_host.trim() || null,
      smtp_port: Number(data.smtp_port),
      quota_preset: data.quota_preset,
      saturation,
    };
    setBusy(true);
    setError(null);
    try {
      const added = await api('/mailboxes', { method: 'POST', body });
      if (onAdded) onAdded(); // who I am now includes the new mailbox (its people, its inbox)
      navigate(['admin', 'box', added.mailbox.address], { added: '1' });
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="content">
      <Back />
      <h1 tabIndex={-1}>{t('admin.addMailbox')}</h1>
      <p class="help">{t('admin.addMailboxHelp')}</p>
      <Problem error={error} own />
      <form class="stack" onSubmit={submit}>
        <label for="mb-address">{t('admin.address')}</label>
        <input id="mb-address" name="address" type="email" required autocomplete="off" />
        <label for="mb-username">{t('admin.loginIfOther')}</label>
        <input id="mb-username" name="username" autocomplete="off" />
        <label for="mb-password">{t('admin.password')}</label>
        <input id="mb-password" name="password" type="password" required autocomplete="new-password" />
        <label for="mb-imap">{t('admin.imapHost')}</label>
        <input id="mb-imap" name="imap_host" required autocomplete="off" placeholder="imaps.pec.aruba.it" />
        <label for="mb-imap-port">{t('admin.imapPort')}</label>
        <input id="mb-imap-port" name="imap_port" type="number" min="1" max="65535" defaultValue="993" required />
        <label for="mb-smtp">{t('admin.smtpHost')}</label>
        <input id="mb-smtp" name="smtp_host" autocomplete="off" aria-describedby="mb-smtp-help" />
        <p class="help" id="mb-smtp-help">{t('admin.smtpHelp')}</p>
        <label for="mb-smtp-port">{t('admin.smtpPort')}</label>
        <input id="mb-smtp-port" name="smtp_port" type="number" min="1" max="65535" defaultValue="465" required />
        <label for="mb-preset">{t('admin.preset')}</label>
        <select id="mb-preset" name="quota_preset" defaultValue="aruba">
          {PRESETS.map((p) => (
            <option key={p} value={p}>
              {t(`admin.presetName.${p}`)}
            </option>
          ))}
        </select>
        <label for="mb-saturation">{t('admin.saturation')}</label>
        <select id="mb-saturation" value={mode} onChange={(event) => setMode(event.currentTarget.value)}>
          {['never', 'after-days', 'above-quota'].map((s) => (
            <option key={s} value={s}>
              {t(`admin.sat.${s}`)}
            </option>
          ))}
        </select>
        {mode === 'after-days' && (
          <>
            <label for="mb-days">{t('admin.days')}</label>
            <input id="mb-days" name="days" type="number" min="1" defaultValue="90" required />
          </>
        )}
        {mode === 'above-quota' && (
          <>
            <label for="mb-percent">{t('admin.percent')}</label>
            <input id="mb-percent" name="percent" type="number" min="1" max="100" defaultValue="80" required />
          </>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? t('admin.checking') : t('admin.addMailboxSubmit')}
        </button>
      </form>
    </main>
  );
}
