// A new campaign, step by step: the message (the CSV's columns shown as merge fields, inserted by
// a click), the attachments and options, then the check: the files uploaded and the manifest
// submitted as a dry run, the validation report (bad rows: row, column, reason) with a corrected
// list uploaded again, a preview of the first messages, a test send, the provider's terms, and
// the confirmation that sends it.
import { useEffect, useRef, useState } from 'preact/hooks';
import { t, count } from './i18n.js';
import { api, box, putFile, campaignPath } from './api.js';
import { ErrorNote, Notice } from './ui.jsx';
import { href } from './route.js';
import { readHeader, TermsNote } from './CampaignParts.jsx';

const STEPS = ['message', 'options', 'check'];
const RECEIPT_TYPES = ['completa', 'breve', 'sintetica'];
const POLL_MS = 1000;

/** A campaign id people can recognise: the name's letters, the time, a short random tail. */
function newId(name) {
  const slug = (name || 'campagna')
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32) || 'campagna';
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${slug}-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

// one of the CSV's columns (`none`: the words for choosing none; `described`: its help below)
function ColumnSelect({ id, columns, value, onChange, none, described }) {
  return (
    <select id={id} value={value} onChange={onChange} aria-describedby={described ? `${id}-help` : undefined}>
      {none !== undefined && <option value="">{none}</option>}
      {columns.map((key) => (
        <option key={key} value={key}>
          {key}
        </option>
      ))}
    </select>
  );
}

function Field({ id, label, help, error, children }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {help && (
        <p class="help" id={`${id}-help`}>
          {help}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

const describedBy = (id, help, error) => [help && `${id}-help`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;

export function CampaignWizard({ mailbox }) {
  const [step, setStep] = useState('message');
  const [draft, setDraft] = useState({
    name: '',
    purpose: '',
    subject: '',
    body: '',
    addressColumn: '',
    attachmentColumn: '',
    groupBy: '',
    cc: '',
    receiptType: 'completa',
    startAt: '',
    pdfOn: false,
    pdfName: '',
    pdfText: '',
  });
  const [csv, setCsv] = useState(null); // { file, header, keys, rows }
  const [csvError, setCsvError] = useState(null);
  const [fixed, setFixed] = useState([]);
  const [own, setOwn] = useState([]);
  const [missing, setMissing] = useState({});
  const [terms, setTerms] = useState(null);
  const [termsRead, setTermsRead] = useState(false);
  const heading = useRef(null);
  const target = useRef('body');

  useEffect(() => {
    document.title = `${t('wiz.title')} — pecflow`;
    api(box(mailbox, '/campaign-terms')).then(setTerms, () => setTerms(null));
  }, [mailbox]);
  useEffect(() => {
    if (heading.current) heading.current.focus();
  }, [step]);

  const set = (name) => (event) => {
    const value = event.currentTarget.type === 'checkbox' ? event.currentTarget.checked : event.currentTarget.value;
    setDraft((before) => ({ ...before, [name]: value }));
    setMissing((before) => (before[name] ? { ...before, [name]: undefined } : before));
  };

  async function chooseCsv(event) {
    const file = event.currentTarget.files[0];
    setCsvError(null);
    if (!file) return setCsv(null);
    try {
      const read = await readHeader(file);
      setCsv({ file, ...read });
      setMissing((before) => ({ ...before, csv: undefined }));
      const keys = read.keys;
      setDraft((before) => ({
        ...before,
        addressColumn: keys.includes(before.addressColumn) ? before.addressColumn : keys.find((k) => k === 'pec') || keys.find((k) => /pec|mail|indirizzo/.test(k)) || keys[0] || '',
      }));
    } catch (failure) {
      setCsv(null);
      setCsvError(t('wiz.csvUnreadable', { reason: failure.message }));
    }
  }

  /** A merge field into the subject or the body, where the cursor was. */
  function insert(key) {
    const which = target.current;
    const element = document.getElementById(which === 'subject' ? 'wiz-subject' : which === 'pdf' ? 'wiz-pdf-text' : 'wiz-body');
    const name = which === 'subject' ? 'subject' : which === 'pdf' ? 'pdfText' : 'body';
    const text = `{{ ${key} }}`;
    const value = draft[name];
    const start = element ? element.selectionStart ?? value.length : value.length;
    const end = element ? element.selectionEnd ?? value.length : value.length;
    const next = value.slice(0, start) + text + value.slice(end);
    setDraft((before) => ({ ...before, [name]: next }));
    setMissing((before) => ({ ...before, [name]: undefined }));
    requestAnimationFrame(() => {
      if (!element) return;
      element.focus();
      element.setSelectionRange(start + text.length, start + text.length);
    });
  }

  function check(stepName) {
    const found = {};
    if (stepName === 'message') {
      if (!draft.name.trim()) found.name = t('wiz.required');
      if (!draft.purpose.trim()) found.purpose = t('wiz.required');
      if (!csv) found.csv = t('wiz.csvRequired');
      if (!draft.subject.trim()) found.subject = t('wiz.required');
      if (!draft.body.trim()) found.body = t('wiz.required');
    } else if (stepName === 'options') {
      if (draft.pdfOn && !draft.pdfName.trim()) found.pdfName = t('wiz.required');
      if (draft.pdfOn && !draft.pdfText.trim()) found.pdfText = t('wiz.required');
      if (draft.cc && !/^[^@\s]+@[^@\s]+\.[^@\s]{2,}$/.test(draft.cc.trim())) found.cc = t('wiz.badAddress');
    }
    setMissing(found);
    return Object.keys(found).length === 0;
  }

  function go(next) {
    const here = STEPS.indexOf(step);
    if (STEPS.indexOf(next) > here && !check(step)) return;
    setStep(next);
  }

  function manifest() {
    const out = {
      mailbox,
      name: draft.name.trim(),
      purpose: draft.purpose.trim(),
      subject: draft.subject,
      body_text: draft.body,
      address_column: draft.addressColumn || 'pec',
      receipt_type: draft.receiptType,
      dry_run: true, // checked first: sent once confirmed (campaign action "confirm")
    };
    if (fixed.length) out.attachments = fixed.map((f) => f.name);
    if (draft.attachmentColumn) out.attachment_column = draft.attachmentColumn;
    if (draft.groupBy) out.group_by = draft.groupBy;
    if (draft.cc.trim()) out.cc = draft.cc.trim();
    if (draft.startAt) out.start_at = new Date(draft.startAt).toISOString();
    if (draft.pdfOn) out.pdf = { filename: draft.pdfName, template: draft.pdfText };
    return out;
  }

  const keys = (csv && csv.keys) || [];
  const steps = (
    <nav aria-label={t('wiz.steps')}>
      <ol class="steps">
        {STEPS.map((name, i) => (
          <li key={name} aria-current={name === step ? 'step' : undefined} class={name === step ? 'current' : ''}>
            {t('wiz.stepOf', { n: i + 1, total: STEPS.length })}: {t(`wiz.step.${name}`)}
          </li>
        ))}
      </ol>
    </nav>
  );

  return (
    <main id="content">
      <p>
        <a href={href(['box', mailbox, 'campaigns'])}>← {t('camp.back')}</a>
      </p>
      <h1>{t('wiz.title')}</h1>
      <p class="muted">{t('wiz.from', { mailbox })}</p>
      {steps}
      {step === 'message' && (
        <section aria-labelledby="step-title">
          <h2 id="step-title" tabIndex={-1} ref={heading}>
            {t('wiz.step.message')}
          </h2>
          <div class="stack wide">
            <Field id="wiz-name" label={t('wiz.name')} error={missing.name}>
              <input id="wiz-name" value={draft.name} onInput={set('name')} aria-invalid={!!missing.name} aria-describedby={describedBy('wiz-name', false, missing.name)} />
            </Field>
            <Field id="wiz-purpose" label={t('wiz.purpose')} help={t('wiz.purposeHelp')} error={missing.purpose}>
              <input id="wiz-purpose" value={draft.purpose} onInput={set('purpose')} aria-invalid={!!missing.purpose} aria-describedby={describedBy('wiz-purpose', true, missing.purpose)} />
            </Field>
            <Field id="wiz-csv" label={t('wiz.csv')} help={t('wiz.csvHelp')} error={missing.csv || csvError}>
              <input id="wiz-csv" type="file" accept=".csv,text/csv" onChange={chooseCsv} aria-invalid={!!(missing.csv || csvError)} aria-describedby={describedBy('wiz-csv', true, missing.csv || csvError)} />
            </Field>
            {csv && (
              <p class="help" data-testid="csv-summary">
                {t('wiz.csvRead', { name: csv.file.name, columns: count(csv.header.length), rows: count(csv.rows) })}
              </p>
            )}
            {csv && (
              <Field id="wiz-address" label={t('wiz.addressColumn')}>
                <ColumnSelect id="wiz-address" columns={keys} value={draft.addressColumn} onChange={set('addressColumn')} />
              </Field>
            )}
            {keys.length > 0 && (
              <div class="merge" role="group" aria-labelledby="merge-title">
                <p id="merge-title" class="label">
                  {t('wiz.mergeFields')}
                </p>
                <p class="help">{t('wiz.mergeHelp')}</p>
                <div class="buttons">
                  {keys.map((key) => (
                    <button key={key} type="button" class="chip" onMouseDown={(e) => e.preventDefault()} onClick={() => insert(key)} aria-label={t('wiz.insert', { field: key })}>
                      {`{{ ${key} }}`}
                    </button>
                  ))}
                </div>
              </div>
            )}
            <Field id="wiz-subject" label={t('wiz.subject')} error={missing.subject}>
              <input id="wiz-subject" value={draft.subject} onInput={set('subject')} onFocus={() => (target.current = 'subject')} aria-invalid={!!missing.subject} aria-describedby={describedBy('wiz-subject', false, missing.subject)} />
            </Field>
            <Field id="wiz-body" label={t('wiz.body')} help={draft.groupBy ? t('wiz.bodyGroupHelp') : t('wiz.bodyHelp')} error={missing.body}>
              <textarea id="wiz-body" rows={9} value={draft.body} onInput={set('body')} onFocus={() => (target.current = 'body')} aria-invalid={!!missing.body} aria-describedby={describedBy('wiz-body', true, missing.body)} />
            </Field>
          </div>
          <div class="buttons wizard-nav">
            <button type="button" class="primary" onClick={() => go('options')}>
              {t('wiz.next')}
            </button>
          </div>
        </section>
      )}
      {step === 'options' && (
        <section aria-labelledby="step-title">
          <h2 id="step-title" tabIndex={-1} ref={heading}>
            {t('wiz.step.options')}
          </h2>
          <div class="stack wide">
            <Field id="wiz-fixed" label={t('wiz.fixed')} help={fixed.length ? fixed.map((f) => f.name).join(', ') : t('wiz.fixedHelp')}>
              <input id="wiz-fixed" type="file" multiple onChange={(e) => setFixed([...e.currentTarget.files])} aria-describedby="wiz-fixed-help" />
            </Field>
            <Field id="wiz-attcol" label={t('wiz.attachmentColumn')} help={t('wiz.attachmentColumnHelp')}>
              <ColumnSelect id="wiz-attcol" columns={keys} value={draft.attachmentColumn} onChange={set('attachmentColumn')} none={t('wiz.noneColumn')} described />
            </Field>
            {draft.attachmentColumn && (
              <Field id="wiz-own" label={t('wiz.ownFiles')} help={own.length ? own.map((f) => f.name).join(', ') : t('wiz.ownFilesHelp')}>
                <input id="wiz-own" type="file" multiple onChange={(e) => setOwn([...e.currentTarget.files])} aria-describedby="wiz-own-help" />
              </Field>
            )}
            <div class="field check">
              <input id="wiz-pdf" type="checkbox" checked={draft.pdfOn} onChange={set('pdfOn')} />
              <label for="wiz-pdf">{t('wiz.pdf')}</label>
            </div>
            {draft.pdfOn && (
              <>
                <Field id="wiz-pdf-name" label={t('wiz.pdfName')} help={t('wiz.pdfNameHelp')} error={missing.pdfName}>
                  <input id="wiz-pdf-name" value={draft.pdfName} onInput={set('pdfName')} aria-describedby={describedBy('wiz-pdf-name', true, missing.pdfName)} />
                </Field>
                <Field id="wiz-pdf-text" label={t('wiz.pdfText')} error={missing.pdfText}>
                  <textarea id="wiz-pdf-text" rows={6} value={draft.pdfText} onInput={set('pdfText')} onFocus={() => (target.current = 'pdf')} aria-describedby={describedBy('wiz-pdf-text', false, missing.pdfText)} />
                </Field>
              </>
            )}
            <Field id="wiz-group" label={t('wiz.groupBy')} help={t('wiz.groupByHelp')}>
              <ColumnSelect id="wiz-group" columns={keys} value={draft.groupBy} onChange={set('groupBy')} none={t('wiz.noGrouping')} described />
            </Field>
            <Field id="wiz-cc" label={t('wiz.cc')} help={t('wiz.ccHelp')} error={missing.cc}>
              <input id="wiz-cc" type="email" value={draft.cc} onInput={set('cc')} aria-describedby={describedBy('wiz-cc', true, missing.cc)} />
            </Field>
            <Field id="wiz-receipt" label={t('wiz.receiptType')}>
              <select id="wiz-receipt" value={draft.receiptType} onChange={set('receiptType')}>
                {RECEIPT_TYPES.map((kind) => (
                  <option key={kind} value={kind}>
                    {t(`wiz.receipt.${kind}`)}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="wiz-start" label={t('wiz.startAt')} help={t('wiz.startAtHelp')}>
              <input id="wiz-start" type="datetime-local" value={draft.startAt} onInput={set('startAt')} aria-describedby="wiz-start-help" />
            </Field>
          </div>
          <div class="buttons wizard-nav">
            <button type="button" onClick={() => go('message')}>
              {t('wiz.back')}
            </button>
            <button type="button" class="primary" onClick={() => go('check')}>
              {t('wiz.next')}
            </button>
          </div>
        </section>
      )}
      {step === 'check' && (
        <CheckStep
          mailbox={mailbox}
          heading={heading}
          csv={csv}
          setCsv={setCsv}
          fixed={fixed}
          own={own}
          manifest={manifest}
          terms={terms}
          termsRead={termsRead}
          setTermsRead={setTermsRead}
          onBack={() => go('options')}
        />
      )}
    </main>
  );
}

function CheckStep({ mailbox, heading, csv, setCsv, fixed, own, manifest, terms, termsRead, setTermsRead, onBack }) {
  const [id, setId] = useState(null);
  const [phase, setPhase] = useState('ready'); // ready, uploading, validating, invalid, validated, confirming
  const [error, setError] = useState(null);
  const [report, setReport] = useState(null);
  const [preview, setPreview] = useState([]);
  const [fixedCsv, setFixedCsv] = useState(null);
  const [fixedError, setFixedError] = useState(null);
  const timer = useRef(null);
  const result = useRef(null);
  const mustRead = terms && terms.first_campaign && terms.terms.length > 0;

  useEffect(() => () => clearTimeout(timer.current), []);
  useEffect(() => {
    if ((phase === 'invalid' || phase === 'validated') && result.current) result.current.focus();
  }, [phase]);

  async function start(list) {
    const campaign = newId(manifest().name);
    setId(campaign);
    setError(null);
    setReport(null);
    setPreview([]);
    setPhase('uploading');
    try {
      const files = { 'recipients.csv': list.file };
      for (const f of [...fixed, ...own]) files[`attachments/${f.name}`] = f;
      const { links } = await api(campaignPath(mailbox, campaign, '/upload-links'), { method: 'POST', body: { files: Object.keys(files) } });
      for (const [name, file] of Object.entries(files)) {
        await putFile(links[name], file, name === 'recipients.csv' ? 'text/csv' : undefined);
      }
      await api(campaignPath(mailbox, campaign, '/manifest'), { method: 'POST', body: { manifest: manifest() } });
      setPhase('validating');
      poll(campaign);
    } catch (failure) {
      setError(failure);
      setPhase('ready');
    }
  }

  async function poll(campaign) {
    clearTimeout(timer.current);
    try {
      const now = await api(campaignPath(mailbox, campaign));
      if (now.status === 'validating') {
        timer.current = setTimeout(() => poll(campaign), POLL_MS);
        return;
      }
      const read = await api(campaignPath(mailbox, campaign, '/report'));
      setReport(read);
      if (now.status === 'validated') {
        const page = await api(campaignPath(mailbox, campaign, '/preview'), { query: { count: 3 } });
        setPreview(page.messages);
        setPhase('validated');
      } else setPhase('invalid');
    } catch (failure) {
      if (failure.status === 404) {
        // the upload's event has not made the campaign yet
        timer.current = setTimeout(() => poll(campaign), POLL_MS);
        return;
      }
      setError(failure);
    }
  }

  async function chooseFixed(event) {
    const file = event.currentTarget.files[0];
    setFixedError(null);
    if (!file) return setFixedCsv(null);
    try {
      setFixedCsv({ file, ...(await readHeader(file)) });
    } catch (failure) {
      setFixedError(t('wiz.csvUnreadable', { reason: failure.message }));
    }
  }

  async function uploadFixed() {
    if (!fixedCsv) {
      setFixedError(t('wiz.csvRequired'));
      return;
    }
    setCsv(fixedCsv);
    await start(fixedCsv);
  }

  async function confirm() {
    setPhase('confirming');
    setError(null);
    try {
      await api(campaignPath(mailbox, id, '/actions'), { method: 'POST', body: { action: 'confirm' } });
      location.hash = href(['box', mailbox, 'campaigns', id]);
    } catch (failure) {
      setError(failure);
      setPhase('validated');
    }
  }

  const draft = manifest();
  const summary = report && report.summary;
  const busy = phase === 'uploading' || phase === 'validating' || phase === 'confirming';
  return (
    <section aria-labelledby="step-title">
      <h2 id="step-title" tabIndex={-1} ref={heading}>
        {t('wiz.step.check')}
      </h2>
      <dl class="facts wizard-facts">
        <dt>{t('wiz.name')}</dt>
        <dd>{draft.name}</dd>
        <dt>{t('wiz.csv')}</dt>
        <dd>{csv ? t('wiz.csvRead', { name: csv.file.name, columns: count(csv.header.length), rows: count(csv.rows) }) : ''}</dd>
        <dt>{t('wiz.subject')}</dt>
        <dd>{draft.subject}</dd>
        <dt>{t('wiz.fixed')}</dt>
        <dd>{fixed.length ? fixed.map((f) => f.name).join(', ') : t('common.none')}</dd>
        {draft.group_by && (
          <>
            <dt>{t('wiz.groupBy')}</dt>
            <dd>{draft.group_by}</dd>
          </>
        )}
        {draft.cc && (
          <>
            <dt>{t('wiz.cc')}</dt>
            <dd>{draft.cc}</dd>
          </>
        )}
        <dt>{t('wiz.receiptType')}</dt>
        <dd>{t(`wiz.receipt.${draft.receipt_type}`)}</dd>
        {draft.start_at && (
          <>
            <dt>{t('wiz.startAt')}</dt>
            <dd>{new Date(draft.start_at).toLocaleString('it-IT', { timeZone: 'Europe/Rome' })}</dd>
          </>
        )}
      </dl>
      {phase === 'ready' && (
        <div class="buttons wizard-nav">
          <button type="button" onClick={onBack}>
            {t('wiz.back')}
          </button>
          <button type="button" class="primary" onClick={() => start(csv)}>
            {t('wiz.upload')}
          </button>
        </div>
      )}
      <ErrorNote error={error} />
      {busy && (
        <p role="status" aria-live="polite">
          {phase === 'uploading' ? t('wiz.uploading') : phase === 'validating' ? t('wiz.validating') : t('wiz.confirming')}
        </p>
      )}
      {report && phase === 'invalid' && (
        <section aria-labelledby="report-title">
          <h3 id="report-title" tabIndex={-1} ref={result}>
            {t('wiz.reportTitle')}
          </h3>
          <div class="note note-error" role="alert">
            <p>{t('wiz.invalid', { errors: count(report.error_count), rows: count((summary && summary.rows) || 0) })}</p>
            {report.invalid_reason && <p class="detail">{report.invalid_reason}</p>}
          </div>
          {report.errors.length > 0 && (
            <table class="bad-rows">
              <caption class="visually-hidden">{t('wiz.badRows')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('camp.col.row')}</th>
                  <th scope="col">{t('wiz.col.column')}</th>
                  <th scope="col">{t('wiz.col.reason')}</th>
                </tr>
              </thead>
              <tbody>
                {report.errors.map((bad, i) => (
                  <tr key={i}>
                    <td data-label={t('camp.col.row')}>{bad.row ?? '—'}</td>
                    <td data-label={t('wiz.col.column')}>{bad.column || bad.field || '—'}</td>
                    <td data-label={t('wiz.col.reason')}>{bad.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {report.errors_truncated && <p class="help">{t('wiz.moreErrors')}</p>}
          <div class="stack">
            <Field id="wiz-fixed-csv" label={t('wiz.fixedCsv')} help={t('wiz.fixedCsvHelp')} error={fixedError}>
              <input id="wiz-fixed-csv" type="file" accept=".csv,text/csv" onChange={chooseFixed} aria-describedby={describedBy('wiz-fixed-csv', true, fixedError)} />
            </Field>
            <div class="buttons">
              <button type="button" onClick={onBack}>
                {t('wiz.editMessage')}
              </button>
              <button type="button" class="primary" onClick={uploadFixed}>
                {t('wiz.uploadFixed')}
              </button>
            </div>
          </div>
        </section>
      )}
      {report && (phase === 'validated' || phase === 'confirming') && (
        <section aria-labelledby="report-title">
          <h3 id="report-title" tabIndex={-1} ref={result}>
            {t('wiz.reportTitle')}
          </h3>
          <Notice>{t('wiz.valid', { rows: count((summary && summary.valid_rows) || 0), messages: count((summary && (summary.messages ?? summary.valid_rows)) || 0) })}</Notice>
          <h3>{t('wiz.preview')}</h3>
          <ol class="preview">
            {preview.map((m) => (
              <li key={m.rows.join('-')}>
                <article class="card" aria-label={t('wiz.previewOf', { to: m.to })}>
                  <dl class="facts">
                    <dt>{t('wiz.to')}</dt>
                    <dd>{m.to}</dd>
                    {m.cc && (
                      <>
                        <dt>{t('wiz.cc')}</dt>
                        <dd>{m.cc}</dd>
                      </>
                    )}
                    <dt>{t('wiz.rowsCovered')}</dt>
                    <dd>{m.rows.join(', ')}</dd>
                    <dt>{t('wiz.subject')}</dt>
                    <dd>{m.subject || ''}</dd>
                    {(m.attachments.length > 0 || m.pdf) && (
                      <>
                        <dt>{t('wiz.attachments')}</dt>
                        <dd>{[...m.attachments, ...(m.pdf ? [m.pdf] : [])].join(', ')}</dd>
                      </>
                    )}
                  </dl>
                  {m.error ? <p class="field-error">{m.error}</p> : <pre class="text">{m.text}</pre>}
                </article>
              </li>
            ))}
          </ol>
          <TestSend mailbox={mailbox} id={id} />
          {terms && <TermsNote terms={terms} />}
          {mustRead && (
            <div class="field check">
              <input id="wiz-terms" type="checkbox" checked={termsRead} onChange={(e) => setTermsRead(e.currentTarget.checked)} />
              <label for="wiz-terms">{t('wiz.termsRead')}</label>
            </div>
          )}
          <div class="buttons wizard-nav">
            <button type="button" class="primary" disabled={phase === 'confirming' || (mustRead && !termsRead)} onClick={confirm}>
              {t('wiz.confirm', { messages: count((summary && (summary.messages ?? summary.valid_rows)) || 0) })}
            </button>
          </div>
          {mustRead && !termsRead && <p class="help">{t('wiz.termsFirst')}</p>}
        </section>
      )}
    </section>
  );
}

function TestSend({ mailbox, id }) {
  const [row, setRow] = useState('2');
  const [to, setTo] = useState('');
  const [sent, setSent] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function send(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setSent(null);
    try {
      setSent(await api(campaignPath(mailbox, id, '/test-send'), { method: 'POST', body: { row: Number(row), to: to.trim() } }));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="test-title" class="acts">
      <h3 id="test-title">{t('wiz.testTitle')}</h3>
      <p class="help">{t('wiz.testHelp')}</p>
      <form class="filters" onSubmit={send}>
        <div class="field narrow">
          <label for="test-row">{t('wiz.testRow')}</label>
          <input id="test-row" type="number" min="2" value={row} onInput={(e) => setRow(e.currentTarget.value)} />
        </div>
        <div class="field grow">
          <label for="test-to">{t('wiz.testTo')}</label>
          <input id="test-to" type="email" required value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </div>
        <button type="submit" disabled={busy}>
          {t('wiz.testSend')}
        </button>
      </form>
      <ErrorNote error={error} />
      {sent && <Notice>{t('wiz.testSent', { to: sent.to, subject: sent.subject, rows: sent.rows.join(', ') })}</Notice>}
    </section>
  );
}
