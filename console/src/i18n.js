// Every visible string of the console, in Italian (the default) and English; dates and amounts
// in Italian formats whatever the language (the office is in Italy), in Rome's time.
const it = {
  'app.title': 'pecflow — posta certificata',
  'app.skip': 'Vai al contenuto',
  'lang.switch': 'English',
  'lang.switchLabel': 'Passa all’inglese',
  'nav.mailboxes': 'Caselle',
  'nav.signedInAs': 'Accesso come {name}',
  'nav.signOut': 'Esci',
  'common.loading': 'Caricamento…',
  'common.cancel': 'Annulla',
  'common.close': 'Chiudi',
  'common.back': 'Torna all’elenco',
  'common.none': 'nessuno',
  'common.error': 'Errore',

  'signIn.title': 'Accedi',
  'signIn.username': 'Nome utente',
  'signIn.password': 'Password',
  'signIn.submit': 'Accedi',
  'signIn.code': 'Codice di verifica (6 cifre)',
  'signIn.codeHelp': 'Il codice mostrato ora dalla tua app di autenticazione.',
  'signIn.verify': 'Verifica',
  'signIn.mfaTitle': 'Verifica in due passaggi',
  'signIn.setupTitle': 'Attiva la verifica in due passaggi',
  'signIn.setupIntro':
    'La posta certificata richiede un secondo fattore. Aggiungi questo account alla tua app di autenticazione (Google Authenticator, Microsoft Authenticator, FreeOTP…) con la chiave qui sotto, poi scrivi il codice che mostra.',
  'signIn.secret': 'Chiave segreta',
  'signIn.uri': 'Indirizzo per l’app (otpauth)',
  'signIn.deviceName': 'Nome del dispositivo (facoltativo)',
  'signIn.enrol': 'Attiva e accedi',
  'signIn.signedOut': 'Sei uscito.',
  'signIn.expired': 'La sessione è scaduta: accedi di nuovo.',
  'signIn.failed': 'Accesso non riuscito: {reason}',
  'signIn.wrongPassword': 'nome utente o password errati.',
  'signIn.wrongCode': 'il codice non è corretto o è scaduto: riprova con quello nuovo.',
  'signIn.unavailable': 'il servizio di accesso non risponde.',
  'signIn.unsupported': 'passaggio di accesso non previsto ({name}).',

  'mailboxes.title': 'Le tue caselle',
  'mailboxes.none': 'Nessuna casella: chiedi a un amministratore di darti un ruolo.',
  'mailboxes.role': 'Il tuo ruolo: {role}',
  'mailboxes.open': 'Apri {mailbox}',
  'role.viewer': 'consultazione',
  'role.operator': 'operatore',
  'role.manager': 'responsabile',
  'role.admin': 'amministratore',

  'list.title': 'Messaggi di {mailbox}',
  'list.views': 'Viste',
  'view.open': 'Da gestire',
  'view.inCharge': 'In carico',
  'view.mine': 'In carico a me',
  'view.handled': 'Gestiti',
  'view.all': 'Tutti i messaggi',
  'view.receipts': 'Ricevute',
  'view.bin': 'Cestino',
  'filter.title': 'Filtri',
  'filter.words': 'Cerca (oggetto, mittente, destinatari)',
  'filter.kind': 'Tipo',
  'filter.anyKind': 'Tutti i tipi',
  'filter.from': 'Ricevuti dal',
  'filter.to': 'Ricevuti fino al',
  'filter.sdi': 'Solo con file SdI',
  'filter.apply': 'Cerca',
  'filter.clear': 'Azzera filtri',
  'list.empty': 'Nessun messaggio.',
  'list.more': 'Altri messaggi',
  'list.count': 'Messaggi mostrati: {count}',
  'col.kind': 'Tipo',
  'col.subject': 'Oggetto',
  'col.from': 'Mittente',
  'col.received': 'Ricevuto',
  'col.handling': 'Stato',
  'list.noSubject': '(senza oggetto)',
  'list.attachments': 'allegati: {count}',

  'kind.pec': 'PEC',
  'kind.anomalia': 'anomalia',
  'kind.ricevuta': 'ricevuta',
  'kind.sdi': 'SdI',
  'kind.rem': 'REM',
  'kind.ordinaria': 'posta ordinaria',
  'kind.malformed': 'non leggibile',
  'kindName.posta-certificata': 'posta certificata',
  'kindName.anomalia': 'anomalia',
  'kindName.accettazione': 'accettazione',
  'kindName.non-accettazione': 'non accettazione',
  'kindName.presa-in-carico': 'presa in carico (ricevuta)',
  'kindName.avvenuta-consegna': 'avvenuta consegna',
  'kindName.errore-consegna': 'errore di consegna',
  'kindName.preavviso-errore-consegna': 'preavviso di errore di consegna',
  'kindName.rilevazione-virus': 'rilevazione virus',
  'kindName.posta-ordinaria': 'posta ordinaria',
  'kindName.malformed': 'non leggibile',

  'handling.da-gestire': 'da gestire',
  'handling.in-carico': 'in carico a {holder}',
  'handling.gestito': 'gestito da {holder}',
  'handling.since': 'dal {when}',
  'handling.on': 'il {when}',
  'handling.note': 'Nota: {note}',

  'msg.title': 'Messaggio',
  'msg.from': 'Da',
  'msg.to': 'A',
  'msg.received': 'Ricevuto',
  'msg.date': 'Data del messaggio',
  'msg.kind': 'Tipo',
  'msg.state': 'Stato',
  'msg.text': 'Testo',
  'msg.textFromHtml': 'Testo ricavato dalla versione HTML.',
  'msg.textCut': 'Il testo continua nell’originale.',
  'msg.noText': 'Il messaggio non ha testo.',
  'msg.envelope': 'Busta di trasporto PEC: qui sotto il messaggio del mittente.',
  'msg.headers': 'Intestazioni',
  'msg.files': 'Allegati',
  'msg.noFiles': 'Nessun allegato.',
  'msg.download': 'Scarica {name}',
  'msg.downloadOriginal': 'Scarica l’originale (.eml)',
  'msg.unnamed': 'senza nome',
  'msg.tooLarge': 'Troppo grande per essere aperto qui: scarica l’originale.',
  'msg.receipts': 'Ricevute',
  'msg.about': 'Il nostro messaggio a cui si riferisce',
  'msg.sentFromHere': 'Risposte e inoltri da qui',
  'msg.noneSent': 'Nessuna risposta o inoltro.',
  'msg.sentTo': 'A {to}',
  'msg.noReceipts': 'Nessuna ricevuta ancora.',
  'msg.thread': 'Conversazione',
  'msg.threadAlone': 'Nessun altro messaggio nella conversazione.',
  'msg.thisOne': '(questo)',
  'msg.audit': 'Cronologia',
  'msg.auditEmpty': 'Nessun evento.',
  'msg.deleted': 'Nel cestino: eliminato da {by} il {when}. Motivo: {reason}',
  'state.queued': 'in coda',
  'state.sent': 'inviato',
  'state.accepted': 'accettato',
  'state.delivered': 'consegnato',
  'state.failed': 'non consegnato',
  'state.not-accepted': 'non accettato',
  'state.interrupted': 'interrotto: invialo di nuovo',

  'audit.at': 'Quando',
  'audit.actor': 'Chi',
  'audit.action': 'Che cosa',
  'audit.from': 'Da dove',
  'action.view': 'ha aperto il messaggio',
  'action.download': 'ha scaricato',
  'action.take-in-charge': 'ha preso in carico',
  'action.release': 'ha rilasciato',
  'action.assign': 'ha assegnato',
  'action.mark-handled': 'ha segnato come gestito',
  'action.reopen': 'ha riaperto',
  'action.reply': 'ha risposto',
  'action.forward': 'ha inoltrato',
  'action.delete': 'ha eliminato',
  'action.restore': 'ha ripristinato',

  'act.title': 'Azioni',
  'act.take': 'Prendi in carico',
  'act.release': 'Rilascia',
  'act.assign': 'Assegna',
  'act.assignTo': 'Assegna a (nome utente)',
  'act.handled': 'Segna come gestito',
  'act.handledNote': 'Nota su cosa è stato fatto (facoltativa)',
  'act.reopen': 'Riapri',
  'act.reply': 'Rispondi',
  'act.replyText': 'Testo della risposta',
  'act.send': 'Invia',
  'act.forward': 'Inoltra',
  'act.forwardTo': 'Indirizzo PEC a cui inoltrare',
  'act.forwardText': 'Nota sopra il messaggio inoltrato',
  'act.delete': 'Elimina',
  'act.deleteReason': 'Motivo dell’eliminazione (resta nella cronologia)',
  'act.restore': 'Ripristina',
  'act.confirm': 'Conferma',
  'act.takeFirst': 'Per rispondere o inoltrare, prendi prima in carico il messaggio.',
  'act.sent': 'Inviato: le ricevute compariranno qui appena arrivano.',
  'act.done': 'Fatto.',
  'act.refresh': 'Aggiorna',

  'error.generic': 'Qualcosa non ha funzionato ({status}).',
  'error.network': 'Il server non risponde: controlla la connessione e riprova.',
  'error.held': 'Il messaggio è in carico a {holder} dal {since}.',
  'error.handled': 'Il messaggio è già stato gestito da {holder}.',
  'error.notInCharge': 'Prendi in carico il messaggio prima di rispondere o inoltrarlo.',
  'error.forbidden': 'Il tuo ruolo non consente questa azione.',
  'error.notFound': 'Non trovato, o non visibile con il tuo account.',
  'error.detail': 'Dettaglio dal server: {message}',
  'error.config': 'La configurazione della console (config.json) non è leggibile.',
};

const en = {
  'app.title': 'pecflow — certified mail',
  'app.skip': 'Skip to content',
  'lang.switch': 'Italiano',
  'lang.switchLabel': 'Switch to Italian',
  'nav.mailboxes': 'Mailboxes',
  'nav.signedInAs': 'Signed in as {name}',
  'nav.signOut': 'Sign out',
  'common.loading': 'Loading…',
  'common.cancel': 'Cancel',
  'common.close': 'Close',
  'common.back': 'Back to the list',
  'common.none': 'nobody',
  'common.error': 'Error',

  'signIn.title': 'Sign in',
  'signIn.username': 'Username',
  'signIn.password': 'Password',
  'signIn.submit': 'Sign in',
  'signIn.code': 'Verification code (6 digits)',
  'signIn.codeHelp': 'The code your authenticator app shows now.',
  'signIn.verify': 'Verify',
  'signIn.mfaTitle': 'Two-step verification',
  'signIn.setupTitle': 'Turn on two-step verification',
  'signIn.setupIntro':
    'Certified mail needs a second factor. Add this account to your authenticator app (Google Authenticator, Microsoft Authenticator, FreeOTP…) with the key below, then type the code it shows.',
  'signIn.secret': 'Secret key',
  'signIn.uri': 'Address for the app (otpauth)',
  'signIn.deviceName': 'Device name (optional)',
  'signIn.enrol': 'Turn on and sign in',
  'signIn.signedOut': 'You have signed out.',
  'signIn.expired': 'Your session has expired: sign in again.',
  'signIn.failed': 'Sign-in failed: {reason}',
  'signIn.wrongPassword': 'wrong username or password.',
  'signIn.wrongCode': 'the code is wrong or has expired: try the new one.',
  'signIn.unavailable': 'the sign-in service does not answer.',
  'signIn.unsupported': 'unexpected sign-in step ({name}).',

  'mailboxes.title': 'Your mailboxes',
  'mailboxes.none': 'No mailbox: ask an administrator to give you a role.',
  'mailboxes.role': 'Your role: {role}',
  'mailboxes.open': 'Open {mailbox}',
  'role.viewer': 'viewer',
  'role.operator': 'operator',
  'role.manager': 'manager',
  'role.admin': 'administrator',

  'list.title': 'Messages of {mailbox}',
  'list.views': 'Views',
  'view.open': 'To handle',
  'view.inCharge': 'In charge',
  'view.mine': 'In my charge',
  'view.handled': 'Handled',
  'view.all': 'All messages',
  'view.receipts': 'Receipts',
  'view.bin': 'Bin',
  'filter.title': 'Filters',
  'filter.words': 'Search (subject, sender, recipients)',
  'filter.kind': 'Kind',
  'filter.anyKind': 'Any kind',
  'filter.from': 'Received from',
  'filter.to': 'Received until',
  'filter.sdi': 'With an SdI file only',
  'filter.apply': 'Search',
  'filter.clear': 'Clear filters',
  'list.empty': 'No messages.',
  'list.more': 'More messages',
  'list.count': 'Messages shown: {count}',
  'col.kind': 'Kind',
  'col.subject': 'Subject',
  'col.from': 'Sender',
  'col.received': 'Received',
  'col.handling': 'State',
  'list.noSubject': '(no subject)',
  'list.attachments': 'attachments: {count}',

  'kind.pec': 'PEC',
  'kind.anomalia': 'anomaly',
  'kind.ricevuta': 'receipt',
  'kind.sdi': 'SdI',
  'kind.rem': 'REM',
  'kind.ordinaria': 'ordinary mail',
  'kind.malformed': 'unreadable',
  'kindName.posta-certificata': 'certified mail',
  'kindName.anomalia': 'anomaly',
  'kindName.accettazione': 'acceptance',
  'kindName.non-accettazione': 'non-acceptance',
  'kindName.presa-in-carico': 'taken in charge (receipt)',
  'kindName.avvenuta-consegna': 'delivery',
  'kindName.errore-consegna': 'delivery error',
  'kindName.preavviso-errore-consegna': 'delivery error warning',
  'kindName.rilevazione-virus': 'virus detected',
  'kindName.posta-ordinaria': 'ordinary mail',
  'kindName.malformed': 'unreadable',

  'handling.da-gestire': 'to handle',
  'handling.in-carico': 'in the charge of {holder}',
  'handling.gestito': 'handled by {holder}',
  'handling.since': 'since {when}',
  'handling.on': 'on {when}',
  'handling.note': 'Note: {note}',

  'msg.title': 'Message',
  'msg.from': 'From',
  'msg.to': 'To',
  'msg.received': 'Received',
  'msg.date': 'Message date',
  'msg.kind': 'Kind',
  'msg.state': 'State',
  'msg.text': 'Text',
  'msg.textFromHtml': 'Text taken from the HTML version.',
  'msg.textCut': 'The text goes on in the original.',
  'msg.noText': 'The message has no text.',
  'msg.envelope': 'PEC transport envelope: the sender’s message is below.',
  'msg.headers': 'Headers',
  'msg.files': 'Attachments',
  'msg.noFiles': 'No attachments.',
  'msg.download': 'Download {name}',
  'msg.downloadOriginal': 'Download the original (.eml)',
  'msg.unnamed': 'unnamed',
  'msg.tooLarge': 'Too large to open here: download the original.',
  'msg.receipts': 'Receipts',
  'msg.about': 'Our message it is about',
  'msg.sentFromHere': 'Replies and forwards from here',
  'msg.noneSent': 'No reply or forward.',
  'msg.sentTo': 'To {to}',
  'msg.noReceipts': 'No receipts yet.',
  'msg.thread': 'Conversation',
  'msg.threadAlone': 'No other message in the conversation.',
  'msg.thisOne': '(this one)',
  'msg.audit': 'History',
  'msg.auditEmpty': 'No events.',
  'msg.deleted': 'In the bin: deleted by {by} on {when}. Reason: {reason}',
  'state.queued': 'queued',
  'state.sent': 'sent',
  'state.accepted': 'accepted',
  'state.delivered': 'delivered',
  'state.failed': 'not delivered',
  'state.not-accepted': 'not accepted',
  'state.interrupted': 'interrupted: send it again',

  'audit.at': 'When',
  'audit.actor': 'Who',
  'audit.action': 'What',
  'audit.from': 'From where',
  'action.view': 'opened the message',
  'action.download': 'downloaded',
  'action.take-in-charge': 'took it in charge',
  'action.release': 'released it',
  'action.assign': 'assigned it',
  'action.mark-handled': 'marked it handled',
  'action.reopen': 'reopened it',
  'action.reply': 'replied',
  'action.forward': 'forwarded it',
  'action.delete': 'deleted it',
  'action.restore': 'restored it',

  'act.title': 'Actions',
  'act.take': 'Take in charge',
  'act.release': 'Release',
  'act.assign': 'Assign',
  'act.assignTo': 'Assign to (username)',
  'act.handled': 'Mark as handled',
  'act.handledNote': 'Note on what was done (optional)',
  'act.reopen': 'Reopen',
  'act.reply': 'Reply',
  'act.replyText': 'Text of the reply',
  'act.send': 'Send',
  'act.forward': 'Forward',
  'act.forwardTo': 'PEC address to forward to',
  'act.forwardText': 'Note above the forwarded message',
  'act.delete': 'Delete',
  'act.deleteReason': 'Reason for deleting (kept in the history)',
  'act.restore': 'Restore',
  'act.confirm': 'Confirm',
  'act.takeFirst': 'To reply or forward, take the message in charge first.',
  'act.sent': 'Sent: its receipts will show here as they arrive.',
  'act.done': 'Done.',
  'act.refresh': 'Refresh',

  'error.generic': 'Something went wrong ({status}).',
  'error.network': 'The server does not answer: check the connection and try again.',
  'error.held': 'The message is in the charge of {holder} since {since}.',
  'error.handled': 'The message has already been handled by {holder}.',
  'error.notInCharge': 'Take the message in charge before replying or forwarding it.',
  'error.forbidden': 'Your role does not allow this.',
  'error.notFound': 'Not found, or not visible with your account.',
  'error.detail': 'Details from the server: {message}',
  'error.config': 'The console configuration (config.json) cannot be read.',
};

export const dictionaries = { it, en };

const ZONE = 'Europe/Rome';
const STORED = 'pecflow.lang';
let lang = 'it';
try {
  const saved = localStorage.getItem(STORED);
  if (saved === 'en' || saved === 'it') lang = saved;
} catch {
  /* storage unavailable: Italian */
}
const listeners = new Set();

export const getLang = () => lang;

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'it';
  try {
    localStorage.setItem(STORED, lang);
  } catch {
    /* not kept across visits */
  }
  document.documentElement.lang = lang;
  listeners.forEach((listener) => listener(lang));
}

export function onLang(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The text for `key` in the current language, with {name} placeholders filled. */
export function t(key, params) {
  const text = dictionaries[lang][key] ?? dictionaries.it[key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Whether the dictionary knows `key` (kinds, states and actions the API may add later). */
export const has = (key) => key in dictionaries.it;

const dateTime = new Intl.DateTimeFormat('it-IT', {
  timeZone: ZONE,
  day: '2-digit',
  month: '2-digit',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});
const dateOnly = new Intl.DateTimeFormat('it-IT', { timeZone: ZONE, day: '2-digit', month: '2-digit', year: 'numeric' });
const numbers = new Intl.NumberFormat('it-IT');
const euros = new Intl.NumberFormat('it-IT', { style: 'currency', currency: 'EUR' });

/** 02/03/2026, 09:15 — in Rome's time, from an ISO 8601 instant. */
export function when(iso) {
  if (!iso) return '';
  const parsed = new Date(iso);
  return Number.isNaN(parsed.getTime()) ? String(iso) : dateTime.format(parsed);
}

export function day(iso) {
  if (!iso) return '';
  const parsed = new Date(iso);
  return Number.isNaN(parsed.getTime()) ? String(iso) : dateOnly.format(parsed);
}

export const count = (n) => numbers.format(n);
export const amount = (n) => euros.format(n);

export function bytes(n) {
  if (n < 1024) return `${numbers.format(n)} B`;
  if (n < 1024 * 1024) return `${numbers.format(Math.round(n / 102.4) / 10)} kB`;
  return `${numbers.format(Math.round(n / (1024 * 102.4)) / 10)} MB`;
}
