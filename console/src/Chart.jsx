// The campaign's progress over time, as inline SVG (no chart library): sent, delivered, failed,
// from the series of counter snapshots the API keeps on the campaign (never read from the jobs).
import { t, count, when } from './i18n.js';

const W = 640;
const H = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };
const LINES = [
  ['sent', (p) => p.sent, 'chart-sent'],
  ['delivered', (p) => p.delivered, 'chart-delivered'],
  ['failed', (p) => p.delivery_failures + p.errors, 'chart-failed'],
];

/** The points as objects: {at, sent, accepted, delivered, delivery_failures, errors, to_send}. */
function points(series) {
  if (!series || !series.points) return [];
  return series.points.map((row) => Object.fromEntries(series.fields.map((name, i) => [name, row[i] || 0])));
}

export function Chart({ series, total }) {
  const data = points(series);
  if (data.length < 1) return <p class="help">{t('chart.empty')}</p>;
  const first = data[0].at;
  const last = Math.max(data[data.length - 1].at, first + 1);
  const top = Math.max(total || 0, ...data.map((p) => p.sent), 1);
  const x = (at) => PAD.left + ((at - first) / (last - first)) * (W - PAD.left - PAD.right);
  const y = (n) => H - PAD.bottom - (n / top) * (H - PAD.top - PAD.bottom);
  const path = (value) =>
    data.map((p, i) => `${i ? 'L' : 'M'}${x(p.at).toFixed(1)},${y(value(p)).toFixed(1)}`).join(' ');
  const end = data[data.length - 1];
  const iso = (at) => new Date(at * 1000).toISOString();
  const summary = t('chart.summary', {
    from: when(iso(first)),
    to: when(iso(end.at)),
    sent: count(end.sent),
    delivered: count(end.delivered),
    failed: count(end.delivery_failures + end.errors),
    total: count(top),
  });
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="none">
        <title id="chart-title">{t('chart.title')}</title>
        <desc id="chart-desc">{summary}</desc>
        <line class="chart-axis" x1={PAD.left} y1={H - PAD.bottom} x2={W - PAD.right} y2={H - PAD.bottom} />
        <line class="chart-axis" x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={H - PAD.bottom} />
        <line class="chart-grid" x1={PAD.left} y1={y(top)} x2={W - PAD.right} y2={y(top)} />
        <text class="chart-label" x={PAD.left - 6} y={y(top) + 4} text-anchor="end">
          {count(top)}
        </text>
        <text class="chart-label" x={PAD.left - 6} y={H - PAD.bottom + 4} text-anchor="end">
          0
        </text>
        <text class="chart-label" x={PAD.left} y={H - 8}>
          {when(iso(first))}
        </text>
        <text class="chart-label" x={W - PAD.right} y={H - 8} text-anchor="end">
          {when(iso(end.at))}
        </text>
        {LINES.map(([name, value, css]) => (
          <path key={name} class={`chart-line ${css}`} d={path(value)} />
        ))}
      </svg>
      <figcaption>
        <ul class="legend">
          {LINES.map(([name, , css]) => (
            <li key={name}>
              <span class={`swatch ${css}`} aria-hidden="true" /> {t(`chart.${name}`)}
            </li>
          ))}
        </ul>
      </figcaption>
    </figure>
  );
}
