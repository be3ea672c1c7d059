/**
 * Metric charts drawn with uPlot: one chart per metric over steps, one series per job (several in
 * the compare view). Colours come from JupyterLab's CSS variables, so the charts follow the light
 * and dark themes; the canvas is transparent.
 */
import uPlot from 'uplot';
import { h, number } from './dom';

export interface IPoint {
  MetricName: string;
  Value: number;
  Step: number | null;
}

const PALETTE = [
  '--jp-brand-color1',
  '--jp-warn-color1',
  '--jp-success-color1',
  '--jp-error-color1',
  '--jp-accent-color1',
  '--jp-brand-color3'
];

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

/** Per metric, per job: the (step, value) points in step order. Metrics without a step (values
 * reported once, at the end) are left out: they belong in a table, not on a curve. */
export function series(points: IPoint[]): Map<string, [number[], number[]]> {
  const out = new Map<string, [number[], number[]]>();
  for (const p of points) {
    if (p.Step === null || p.Step === undefined) {
      continue;
    }
    let s = out.get(p.MetricName);
    if (!s) {
      s = [[], []];
      out.set(p.MetricName, s);
    }
    const i = s[0].indexOf(p.Step);
    if (i >= 0) {
      s[1][i] = p.Value; // a step reported again (a resumed job): the newest value
    } else {
      s[0].push(p.Step);
      s[1].push(p.Value);
    }
  }
  for (const [name, [xs, ys]] of out) {
    const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
    out.set(name, [order.map(i => xs[i]), order.map(i => ys[i])]);
  }
  return out;
}

/** One chart of a metric: `lines` maps a label (a job) to its points. */
export class MetricChart {
  readonly node: HTMLElement;
  private _plot: uPlot | null = null;
  private _holder: HTMLElement;
  private _key = '';

  constructor(readonly metric: string) {
    this._holder = h('div', { class: 'nbsage-chart-canvas' });
    this.node = h(
      'figure',
      { class: 'nbsage-chart', dataset: { metric } },
      h('figcaption', {}, metric),
      this._holder
    );
  }

  update(lines: Map<string, [number[], number[]]>): void {
    const labels = [...lines.keys()];
    const data = uPlot.join(labels.map(l => lines.get(l)!) as uPlot.AlignedData[]);
    const key = labels.join('\u0000');
    const width = Math.max(this.node.clientWidth || 0, 280) - 8;
    if (this._plot && key === this._key) {
      this._plot.setData(data);
      return;
    }
    this._plot?.destroy();
    this._key = key;
    // colours are read at each redraw, so a theme change (ChartGrid redraws) recolours the chart
    const text = () => cssVar('--jp-ui-font-color1', '#333');
    const grid = () => cssVar('--jp-border-color2', '#ddd');
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    this._plot = new uPlot(
      {
        width,
        height: 180,
        legend: { show: true, live: true },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: false } },
        axes: [
          { ...axis, label: 'step', labelSize: 16, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000] },
          { ...axis, label: this.metric, labelSize: 16, size: 60, values: (_u, ticks) => ticks.map(t => number(t)) }
        ],
        series: [
          { label: 'step' },
          ...labels.map((label, i) => ({
            label,
            stroke: () => cssVar(PALETTE[i % PALETTE.length], '#1976d2'),
            width: 2,
            spanGaps: true,
            points: { show: (data[0] as number[]).length < 40 },
            value: (_u: uPlot, v: number | null) => (v === null ? '' : number(v))
          }))
        ]
      },
      data,
      this._holder
    );
  }

  redraw(): void {
    this._plot?.redraw(false, true);
  }

  resize(): void {
    if (this._plot) {
      const width = Math.max(this.node.clientWidth || 0, 280) - 8;
      this._plot.setSize({ width, height: 180 });
    }
  }

  dispose(): void {
    this._plot?.destroy();
    this._plot = null;
  }
}

/** A set of charts, one per metric, kept in step with the points given to `update`. */
export class ChartGrid {
  readonly node = h('div', { class: 'nbsage-charts' });
  private _charts = new Map<string, MetricChart>();
  // JupyterLab marks the theme on <body>: redraw with the new theme's colours when it changes
  private _theme = new MutationObserver(() => this._charts.forEach(c => c.redraw()));

  constructor() {
    this._theme.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-light', 'data-jp-theme-name'] });
  }

  /** byJob: label -> the job's points. */
  update(byJob: Map<string, IPoint[]>): void {
    const perMetric = new Map<string, Map<string, [number[], number[]]>>();
    for (const [label, points] of byJob) {
      for (const [metric, line] of series(points)) {
        if (!perMetric.has(metric)) {
          perMetric.set(metric, new Map());
        }
        perMetric.get(metric)!.set(label, line);
      }
    }
    for (const metric of [...perMetric.keys()].sort()) {
      let chart = this._charts.get(metric);
      if (!chart) {
        chart = new MetricChart(metric);
        this._charts.set(metric, chart);
        this.node.append(chart.node);
      }
      chart.update(perMetric.get(metric)!);
    }
    if (!perMetric.size && !this.node.querySelector('.nbsage-empty')) {
      this.node.append(h('p', { class: 'nbsage-empty' }, 'No metrics over steps yet.'));
    } else if (perMetric.size) {
      this.node.querySelector('.nbsage-empty')?.remove();
    }
  }

  resize(): void {
    this._charts.forEach(c => c.resize());
  }

  dispose(): void {
    this._theme.disconnect();
    this._charts.forEach(c => c.dispose());
  }
}
