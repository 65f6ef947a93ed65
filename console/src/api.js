// The console talks only to the published API (openapi.json at the repository's root): the base
// URL and the sign-in settings come from config.json, served beside index.html.
import { session } from './auth.js';

let config = null;

export async function loadConfig() {
  if (config) return config;
  const answer = await fetch('config.json', { cache: 'no-store' });
  if (!answer.ok) throw new Error(`config.json: ${answer.status}`);
  config = await answer.json();
  config.api = String(config.api || '').replace(/\/+$/, '');
  return config;
}

export const getConfig = () => config;

/** An answer of the API that is not a success: its status and its JSON body (message, code,
 * and on 409 who holds the message and since when). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

const listeners = new Set();
/** Called on a 401: the token expired or was refused. */
export const onUnauthorized = (listener) => listeners.add(listener);

export async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(config.api + path);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '' && value !== false) url.searchParams.set(name, value);
  }
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null);
  }
  const text = await answer.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (answer.status === 401) listeners.forEach((listener) => listener());
  if (!answer.ok) throw new ApiError(answer.status, parsed);
  return parsed;
}

/** The path of a mailbox's resource: the address is one path segment. */
export const box = (mailbox, rest = '') => `/mailboxes/${encodeURIComponent(mailbox)}${rest}`;

/** A file PUT to an upload link the API gave (a campaign's CSV or attachment): straight to the
 * bucket, never through the API. */
export async function putFile(url, file, type) {
  let answer;
  try {
    answer = await fetch(url, { method: 'PUT', body: file, headers: { 'Content-Type': type || file.type || 'application/octet-stream' } });
  } catch {
    throw new ApiError(0, null);
  }
  if (!answer.ok) throw new ApiError(answer.status, { message: `upload: HTTP ${answer.status}` });
}

/** A campaign's path under its mailbox. */
export const campaignPath = (mailbox, id, rest = '') => box(mailbox, `/campaigns/${encodeURIComponent(id)}${rest}`);
