// Pieces the campaign wizard and panel share: the CSV's header read in the browser, the
// provider's terms, the quota in words.
import { t, count, has } from './i18n.js';

const PEEK = 256 * 1024; // the header and a row count from the first bytes; the server reads all

/** A column as templates name it: "  Ragione Sociale " → ragione_sociale (as the server does). */
export const columnKey = (name) =>
  name
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_]+/gu, '_')
    .replace(/^_+|_+$/g, '');

/** Text as offices save CSVs: UTF-8 (with or without BOM), else Windows-1252 (Excel in Italy). */
function decode(buffer) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buffer).replace(/^\uFEFF/, '');
  } catch {
    return new TextDecoder('windows-1252').decode(buffer);
  }
}

function splitLine(line, delimiter) {
  const cells = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}

/** The CSV's header (its columns and their template names) and about how many rows it has. */
export async function readHeader(file) {
  const buffer = await file.slice(0, PEEK).arrayBuffer();
  let text = decode(new Uint8Array(buffer));
  if (file.size > PEEK) text = text.slice(0, text.lastIndexOf('\n') + 1);
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (!lines.length) throw new Error(t('wiz.csvEmpty'));
  const first = lines[0];
  const delimiter = [';', ',', '\t'].reduce((best, d) => (first.split(d).length > first.split(best).length ? d : best), ';');
  const header = splitLine(first, delimiter).map((h) => h.trim());
  const keys = [...new Set(header.map(columnKey).filter(Boolean))];
  if (!keys.length) throw new Error(t('wiz.csvNoHeader'));
  const rows = file.size > PEEK ? Math.round(((lines.length - 1) * file.size) / PEEK) : lines.length - 1;
  return { header, keys, rows, delimiter };
}

function windowText(seconds) {
  if (seconds % 86400 === 0) return t(seconds === 86400 ? 'quota.day' : 'quota.days', { n: count(seconds / 86400) });
  if (seconds % 3600 === 0) return t(seconds === 3600 ? 'quota.hour' : 'quota.hours', { n: count(seconds / 3600) });
  if (seconds % 60 === 0) return t(seconds === 60 ? 'quota.minute' : 'quota.minutes', { n: count(seconds / 60) });
  return t('quota.seconds', { n: count(seconds) });
}

/** "250 messaggi ogni 20 minuti (preset aruba)" */
export const quotaText = (quota) =>
  t('quota.text', { limit: count(quota.limit), window: windowText(quota.window_seconds), preset: quota.preset });

/** What the sending mailbox's provider allows for automated and mass sending: in the person's
 * language for the presets the console knows, else as the server words it. */
export function TermsNote({ terms }) {
  const known = terms.preset && has(`terms.${terms.preset}`);
  const lines = known ? t(`terms.${terms.preset}`).split('|') : terms.terms;
  if (!lines.length && !terms.quota) return null;
  return (
    <section aria-labelledby="terms-title" class={`note ${terms.needs_agreement ? 'note-warn' : ''}`} data-testid="provider-terms">
      <h3 id="terms-title">{t('terms.title', { provider: terms.provider || terms.preset || '' })}</h3>
      {terms.first_campaign && <p>{t('terms.first')}</p>}
      <ul>
        {lines.map((line, i) => (
          <li key={i}>{line}</li>
        ))}
      </ul>
      {terms.quota && <p>{quotaText(terms.quota)}</p>}
      {terms.source && <p class="detail">{t('terms.source', { source: terms.source })}</p>}
    </section>
  );
}
