// Small pieces shared by the screens: error notes in clear words, kind badges, the handling state.
import { t, when, has } from './i18n.js';

/** What went wrong, in the person's words: the API's JSON answer read by its status and code,
 * with the server's own sentence beside it. */
export function describe(error) {
  if (!error) return null;
  const status = error.status;
  const body = error.body || {};
  let text;
  let whole = false; // our sentence says all the server's does (and in Rome's time)
  if (status === 0) text = t('error.network');
  else if (status === 409 && body.code === 'held-by-other') {
    text = t('error.held', { holder: body.holder, since: when(body.since) });
    whole = true;
  } else if (status === 409 && body.code === 'already-handled') {
    text = t('error.handled', { holder: body.holder || '' });
    whole = true;
  } else if (status === 409 && body.code === 'not-in-charge') {
    text = t('error.notInCharge');
    whole = true;
  }
  else if (status === 403) text = t('error.forbidden');
  else if (status === 404) text = t('error.notFound');
  else text = t('error.generic', { status });
  const detail = !whole && body.message && body.message !== text ? t('error.detail', { message: body.message }) : null;
  return { text, detail };
}

export function ErrorNote({ error }) {
  const said = describe(error);
  if (!said) return null;
  return (
    <div class="note note-error" role="alert">
      <p>{said.text}</p>
      {said.detail && <p class="detail">{said.detail}</p>}
    </div>
  );
}

export function Notice({ children }) {
  return (
    <div class="note note-ok" role="status">
      <p>{children}</p>
    </div>
  );
}

/** The receipt kinds (pecflow.pec.kinds), in the order the filter lists them. */
export const RECEIPT_KINDS = [
  'accettazione',
  'non-accettazione',
  'presa-in-carico',
  'avvenuta-consegna',
  'errore-consegna',
  'preavviso-errore-consegna',
  'rilevazione-virus',
];
const RECEIPTS = new Set(RECEIPT_KINDS);
export const isReceipt = (kind) => RECEIPTS.has(kind);

/** The badges of a row: what it is (PEC, anomalia, ricevuta…) and whether it carries SdI or REM. */
export function badgesOf(row) {
  const out = [];
  const kind = row.kind;
  if (kind === 'posta-certificata') out.push(['pec', t('kind.pec')]);
  else if (kind === 'anomalia') out.push(['anomalia', t('kind.anomalia')]);
  else if (isReceipt(kind)) out.push(['ricevuta', t('kind.ricevuta')]);
  else if (kind === 'posta-ordinaria') out.push(['ordinaria', t('kind.ordinaria')]);
  else if (kind) out.push(['other', has(`kindName.${kind}`) ? t(`kindName.${kind}`) : kind]);
  if (row.sdi_type || row.sdi) out.push(['sdi', t('kind.sdi')]);
  if (row.rem_event || row.rem) out.push(['rem', t('kind.rem')]);
  return out;
}

export function Badges({ row }) {
  const tags = Array.isArray(row.tags) ? row.tags : [];
  return (
    <span class="badges">
      {badgesOf(row).map(([name, label]) => (
        <span key={name} class={`badge badge-${name}`}>
          {label}
        </span>
      ))}
      {tags.map((tag) => (
        <span key={`tag-${tag}`} class="badge badge-tag" title={t('tag.title')}>
          <span class="visually-hidden">{t('tag.title')}: </span>
          {tag}
        </span>
      ))}
    </span>
  );
}

export const kindName = (kind) => (has(`kindName.${kind}`) ? t(`kindName.${kind}`) : kind || '');

/** da gestire / in carico a anna dal 02/03/2026, 09:15 / gestito da anna il … */
export function handlingText(row) {
  const status = row.handling || 'da-gestire';
  if (status === 'da-gestire') return t('handling.da-gestire');
  const who = t(`handling.${status}`, { holder: row.holder || t('common.none') });
  if (!row.since) return who;
  return `${who} ${t(status === 'gestito' ? 'handling.on' : 'handling.since', { when: when(row.since) })}`;
}

export function Handling({ row }) {
  const status = row.handling || 'da-gestire';
  return <span class={`handling handling-${status}`}>{handlingText(row)}</span>;
}

/** What a person calls the subject and the sender: for a PEC, the sender's own (not the
 * provider's envelope "POSTA CERTIFICATA: …" from posta-certificata@…). */
export const subjectOf = (row) => row.original_subject || row.subject || '';
export const senderOf = (row, message) => (message && message.sender) || row.sender || row.from || '';

export const stateName = (state) => (has(`state.${state}`) ? t(`state.${state}`) : state);
