// The console's addresses live after '#': #/box/<mailbox>/msg/<sha256>?view=open&q=…
export function parse(hash) {
  const text = (hash || '').replace(/^#\/?/, '');
  const [path, search] = text.split('?');
  const parts = path ? path.split('/').map((p) => decodeURIComponent(p)) : [];
  const params = Object.fromEntries(new URLSearchParams(search || ''));
  return { parts, params };
}

export function href(parts, params) {
  const path = parts.map((p) => encodeURIComponent(p)).join('/');
  const search = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== undefined && v !== '')).toString();
  return `#/${path}${search ? `?${search}` : ''}`;
}
