// One message: what it says (headers, text, files with their download links), its receipts side
// by side (`about`, `sent_from_here`), its conversation, who holds it, its audit trail; and the
// acts the person's role allows (the API refuses the others anyway).
import { useEffect, useRef, useState } from 'preact/hooks';
import { t, when, bytes, has } from './i18n.js';
import { api, box } from './api.js';
import { ErrorNote, Notice, Badges, Handling, kindName, stateName, isReceipt, subjectOf, senderOf } from './ui.jsx';
import { href } from './route.js';

const RANK = { viewer: 1, operator: 2, manager: 3, admin: 4 };

/** The acts shown to this person on this message now: what their role and its handling allow. */
export function allowedActs(row, role, username) {
  const rank = RANK[role] || 0;
  const status = row.handling || 'da-gestire';
  const mine = status === 'in-carico' && row.holder === username;
  const acts = new Set();
  if (row.deleted) {
    if (rank >= RANK.admin) acts.add('restore');
    return acts;
  }
  if (rank >= RANK.operator) {
    if (status === 'da-gestire') acts.add('take');
    if (status === 'in-carico' && (mine || rank >= RANK.manager)) acts.add('release');
    if (status !== 'gestito' && (status === 'da-gestire' || mine || rank >= RANK.manager)) acts.add('handled');
    if (status === 'gestito') acts.add('reopen');
    if (mine && !isReceipt(row.kind)) {
      acts.add('reply');
      acts.add('forward');
    }
  }
  if (rank >= RANK.manager && status !== 'gestito') acts.add('assign');
  if (rank >= RANK.admin) acts.add('delete');
  return acts;
}

function SentCard({ sent, mailbox, view }) {
  return (
    <article class="sent card" aria-label={sent.subject || sent.message_id}>
      <h3>{sent.subject || sent.message_id}</h3>
      {sent.to && <p>{t('msg.sentTo', { to: sent.to })}</p>}
      <p>
        <span class={`state state-${sent.state}`}>{stateName(sent.state)}</span>
      </p>
      {sent.error && <p class="muted">{sent.error}</p>}
      <h4>{t('msg.receipts')}</h4>
      {sent.receipts && sent.receipts.length ? (
        <ol class="receipts">
          {sent.receipts.map((receipt) => (
            <li key={receipt.sha256 || receipt.kind + receipt.at}>
              {receipt.sha256 ? (
                <a href={href(['box', mailbox, 'msg', receipt.sha256], { view })}>{kindName(receipt.kind)}</a>
              ) : (
                kindName(receipt.kind)
              )}{' '}
              <time dateTime={receipt.at}>{when(receipt.at)}</time>
              {receipt.error && <span class="muted"> — {receipt.error}</span>}
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">{t('msg.noReceipts')}</p>
      )}
    </article>
  );
}

function auditDetail(event) {
  const details = event.details || {};
  return [details.file, details.to, details.reason, details.note].filter(Boolean).join(' · ');
}

export function MessageView({ me, mailbox, role, sha, params }) {
  const [shown, setShown] = useState(null);
  const [trail, setTrail] = useState([]);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [form, setForm] = useState(null); // the act whose form is open
  const [busy, setBusy] = useState(false);
  const heading = useRef(null);
  const view = params.view;

  async function loadTrail() {
    try {
      setTrail(await api(box(mailbox, `/messages/${sha}/audit`)));
    } catch {
      setTrail([]);
    }
  }

  async function load() {
    setError(null);
    try {
      setShown(await api(box(mailbox, `/messages/${sha}`)));
    } catch (failure) {
      setError(failure);
    }
    await loadTrail();
  }

  useEffect(() => {
    setShown(null);
    setNotice(null);
    setForm(null);
    load();
  }, [mailbox, sha]);

  useEffect(() => {
    if (shown && heading.current) heading.current.focus();
  }, [shown && shown.row.sha256]);
  useEffect(() => {
    if (shown) document.title = `${subjectOf(shown.row) || t('msg.title')} — pecflow`;
  });

  async function act(work, done) {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await work();
      setForm(null);
      setNotice(done || t('act.done'));
    } catch (failure) {
      setError(failure);
      const body = failure.body || {};
      if (failure.status === 409 && body.holder) {
        // someone else was quicker: show the message as the server has it now
        const status = body.code === 'already-handled' ? 'gestito' : 'in-carico';
        setShown((now) => now && { ...now, row: { ...now.row, handling: status, holder: body.holder, since: body.since } });
      }
    } finally {
      setBusy(false);
    }
  }

  const handling = (body) =>
    act(async () => {
      const after = await api(box(mailbox, `/messages/${sha}/handling`), { method: 'POST', body });
      const row = { ...shown.row, handling: after.handling, holder: after.holder, since: after.since, handled_by: after.by, note: after.note };
      setShown({ ...shown, row });
      await loadTrail();
    });

  // acts that change more than the handling: the message is read again (its replies, the bin)
  const post = (path, body, done) =>
    act(async () => {
      await api(box(mailbox, `/messages/${sha}/${path}`), { method: 'POST', body });
      setShown(await api(box(mailbox, `/messages/${sha}`)));
      await loadTrail();
    }, done);

  async function download(path) {
    setError(null);
    try {
      const link = await api(box(mailbox, `/messages/${sha}/${path}`));
      window.location.assign(link.url);
      await loadTrail();
    } catch (failure) {
      setError(failure);
    }
  }

  function submit(event, what) {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const value = (name) => String(data.get(name) || '').trim();
    if (what === 'assign') handling({ act: 'assign', to: value('to') });
    else if (what === 'handled') handling({ act: 'mark-handled', note: value('note') || undefined });
    else if (what === 'reply') post('reply', { text: String(data.get('text')) }, t('act.sent'));
    else if (what === 'forward') post('forward', { to: value('to'), text: String(data.get('text')) }, t('act.sent'));
    else if (what === 'delete') post('delete', { reason: value('reason') });
  }

  if (!shown) {
    return (
      <main id="content">
        <p>
          <a href={href(['box', mailbox], { view })}>← {t('common.back')}</a>
        </p>
        {error ? <ErrorNote error={error} /> : <p aria-live="polite">{t('common.loading')}</p>}
      </main>
    );
  }

  const { row, content, about } = shown;
  const message = shown.message || {};
  const acts = allowedActs(row, role, me.username);
  const status = row.handling || 'da-gestire';
  const formOf = (name, label, fields) =>
    form === name && (
      <form class="act-form stack" onSubmit={(event) => submit(event, name)} aria-label={label}>
        {fields}
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy}>
            {name === 'reply' || name === 'forward' ? t('act.send') : t('act.confirm')}
          </button>
          <button type="button" onClick={() => setForm(null)}>
            {t('common.cancel')}
          </button>
        </div>
      </form>
    );
  const opener = (name, label) =>
    acts.has(name) && (
      <button type="button" aria-expanded={form === name} onClick={() => setForm(form === name ? null : name)} disabled={busy}>
        {label}
      </button>
    );

  return (
    <main id="content" class="message">
      <p>
        <a href={href(['box', mailbox], { view })}>← {t('common.back')}</a>
      </p>
      <header class="message-head">
        <h1 tabIndex={-1} ref={heading}>
          {subjectOf(row) || message.subject || t('list.noSubject')}
        </h1>
        <Badges row={row} />
        <dl class="facts">
          <dt>{t('msg.from')}</dt>
          <dd>{senderOf(row, message)}</dd>
          {row.to && (
            <>
              <dt>{t('msg.to')}</dt>
              <dd>{row.to.join(', ')}</dd>
            </>
          )}
          <dt>{t('msg.received')}</dt>
          <dd>
            <time dateTime={row.received_at}>{when(row.received_at)}</time>
          </dd>
          <dt>{t('msg.kind')}</dt>
          <dd>{kindName(row.kind)}</dd>
          <dt>{t('msg.state')}</dt>
          <dd data-testid="holder">
            <Handling row={row} />
            {row.note && <div>{t('handling.note', { note: row.note })}</div>}
          </dd>
        </dl>
        {row.deleted && (
          <p class="note note-warn">{t('msg.deleted', { by: row.deleted.by, when: when(row.deleted.at), reason: row.deleted.reason })}</p>
        )}
      </header>

      <section class="acts" aria-labelledby="acts-title">
        <h2 id="acts-title">{t('act.title')}</h2>
        <div class="buttons">
          {acts.has('take') && (
            <button type="button" class="primary" disabled={busy} onClick={() => handling({ act: 'take-in-charge' })}>
              {t('act.take')}
            </button>
          )}
          {opener('reply', t('act.reply'))}
          {opener('forward', t('act.forward'))}
          {opener('handled', t('act.handled'))}
          {acts.has('release') && (
            <button type="button" disabled={busy} onClick={() => handling({ act: 'release' })}>
              {t('act.release')}
            </button>
          )}
          {acts.has('reopen') && (
            <button type="button" disabled={busy} onClick={() => handling({ act: 'reopen' })}>
              {t('act.reopen')}
            </button>
          )}
          {opener('assign', t('act.assign'))}
          {opener('delete', t('act.delete'))}
          {acts.has('restore') && (
            <button type="button" disabled={busy} onClick={() => post('restore')}>
              {t('act.restore')}
            </button>
          )}
          <button type="button" disabled={busy} onClick={load}>
            {t('act.refresh')}
          </button>
        </div>
        {RANK[role] >= RANK.operator && status === 'da-gestire' && !row.deleted && !isReceipt(row.kind) && (
          <p class="help">{t('act.takeFirst')}</p>
        )}
        {formOf(
          'reply',
          t('act.reply'),
          <>
            <label for="reply-text">{t('act.replyText')}</label>
            <textarea id="reply-text" name="text" rows={8} required maxLength={100000} autoFocus />
          </>,
        )}
        {formOf(
          'forward',
          t('act.forward'),
          <>
            <label for="forward-to">{t('act.forwardTo')}</label>
            <input id="forward-to" name="to" type="email" required autoFocus />
            <label for="forward-text">{t('act.forwardText')}</label>
            <textarea id="forward-text" name="text" rows={5} required maxLength={100000} />
          </>,
        )}
        {formOf(
          'handled',
          t('act.handled'),
          <>
            <label for="handled-note">{t('act.handledNote')}</label>
            <textarea id="handled-note" name="note" rows={3} maxLength={2000} autoFocus />
          </>,
        )}
        {formOf(
          'assign',
          t('act.assign'),
          <>
            <label for="assign-to">{t('act.assignTo')}</label>
            <input id="assign-to" name="to" required maxLength={63} autoCapitalize="none" autoFocus />
          </>,
        )}
        {formOf(
          'delete',
          t('act.delete'),
          <>
            <label for="delete-reason">{t('act.deleteReason')}</label>
            <input id="delete-reason" name="reason" required maxLength={500} autoFocus />
          </>,
        )}
        <ErrorNote error={error} />
        {notice && <Notice>{notice}</Notice>}
      </section>

      <div class="columns">
        <section class="content" aria-labelledby="text-title">
          <h2 id="text-title">{t('msg.text')}</h2>
          {content && content.too_large && <p class="note note-warn">{t('msg.tooLarge')}</p>}
          {content && content.envelope && <p class="help">{t('msg.envelope')}</p>}
          {content && content.text ? <pre class="text">{content.text}</pre> : <p class="muted">{t('msg.noText')}</p>}
          {content && content.from_html && <p class="help">{t('msg.textFromHtml')}</p>}
          {content && content.text_cut && <p class="help">{t('msg.textCut')}</p>}

          <h2>{t('msg.files')}</h2>
          {content && content.files.length ? (
            <ul class="files">
              {content.files.map((file) => (
                <li key={file.index}>
                  <button type="button" class="link" onClick={() => download(`files/${file.index}`)}>
                    {t('msg.download', { name: file.filename || t('msg.unnamed') })}
                  </button>{' '}
                  <span class="muted">
                    {file.content_type}, {bytes(file.size)}
                  </span>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">{t('msg.noFiles')}</p>
          )}
          <p>
            <button type="button" class="link" onClick={() => download('download')}>
              {t('msg.downloadOriginal')}
            </button>
          </p>
          <p>
            <button type="button" class="link" onClick={() => download('evidence')} title={t('msg.evidenceHelp')}>
              {t('msg.evidence')}
            </button>
          </p>
          {content && content.headers.length > 0 && (
            <details>
              <summary>{t('msg.headers')}</summary>
              <dl class="headers">
                {content.headers.map((header, i) => (
                  <div key={i}>
                    <dt>{header.name}</dt>
                    <dd>{header.value}</dd>
                  </div>
                ))}
              </dl>
            </details>
          )}
        </section>

        <aside class="side" aria-label={t('msg.receipts')}>
          {about && (
            <section aria-labelledby="about-title">
              <h2 id="about-title">{t('msg.about')}</h2>
              <SentCard sent={about} mailbox={mailbox} view={view} />
            </section>
          )}
          {!isReceipt(row.kind) && (
            <section aria-labelledby="sent-title">
              <h2 id="sent-title">{t('msg.sentFromHere')}</h2>
              {shown.sent_from_here.length ? (
                shown.sent_from_here.map((sent) => <SentCard key={sent.message_id} sent={sent} mailbox={mailbox} view={view} />)
              ) : (
                <p class="muted">{t('msg.noneSent')}</p>
              )}
            </section>
          )}
          <section aria-labelledby="thread-title">
            <h2 id="thread-title">{t('msg.thread')}</h2>
            {shown.thread.length > 1 ? (
              <ol class="thread">
                {shown.thread.map((item) => (
                  <li key={item.sha256}>
                    {item.sha256 === sha ? (
                      <span aria-current="page">
                        {subjectOf(item) || t('list.noSubject')} {t('msg.thisOne')}
                      </span>
                    ) : (
                      <a href={href(['box', mailbox, 'msg', item.sha256], { view })}>{subjectOf(item) || t('list.noSubject')}</a>
                    )}{' '}
                    <span class="muted">
                      {senderOf(item)} · <time dateTime={item.received_at}>{when(item.received_at)}</time>
                    </span>
                  </li>
                ))}
              </ol>
            ) : (
              <p class="muted">{t('msg.threadAlone')}</p>
            )}
          </section>
        </aside>
      </div>

      <section aria-labelledby="audit-title">
        <h2 id="audit-title">{t('msg.audit')}</h2>
        {trail.length ? (
          <table class="audit">
            <thead>
              <tr>
                <th scope="col">{t('audit.at')}</th>
                <th scope="col">{t('audit.actor')}</th>
                <th scope="col">{t('audit.action')}</th>
                <th scope="col">{t('audit.from')}</th>
              </tr>
            </thead>
            <tbody>
              {trail.map((event) => (
                <tr key={event.seq}>
                  <td data-label={t('audit.at')}>
                    <time dateTime={event.at}>{when(event.at)}</time>
                  </td>
                  <td data-label={t('audit.actor')}>{event.actor}</td>
                  <td data-label={t('audit.action')}>
                    {has(`action.${event.action}`) ? t(`action.${event.action}`) : event.action}
                    {auditDetail(event) && <span class="muted"> — {auditDetail(event)}</span>}
                  </td>
                  <td data-label={t('audit.from')}>{event.source_ip}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p class="muted">{t('msg.auditEmpty')}</p>
        )}
      </section>
    </main>
  );
}
