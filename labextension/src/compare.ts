/**
 * Two or more jobs side by side: their overview, the hyperparameters that differ (and those they
 * share), final metrics, and each metric's curves overlaid.
 */
import { Widget } from '@lumino/widgets';
import { Json, jobStatus, request } from './api';
import { ChartGrid, IPoint } from './charts';
import { duration, h, number } from './dom';

export class CompareView extends Widget {
  private _charts = new ChartGrid();

  constructor(readonly names: string[]) {
    super();
    this.addClass('nbsage-detail');
    this.addClass('nbsage-compare');
    this.id = `nbsage-compare-${names.join('-')}`.slice(0, 200);
    this.title.label = `Compare ${names.length} jobs`;
    this.title.caption = names.join(', ');
    this.title.closable = true;
    void this._read();
  }

  protected onResize(): void {
    this._charts.resize();
  }

  dispose(): void {
    this._charts.dispose();
    super.dispose();
  }

  private async _read(): Promise<void> {
    const q = (n: string) => encodeURIComponent(n);
    const [descs, metrics] = await Promise.all([
      Promise.all(this.names.map(n => request(`jobs/${q(n)}`))),
      Promise.all(this.names.map(n => request(`jobs/${q(n)}/metrics`)))
    ]);
    const cell = (v: any) => h('td', {}, v === undefined ? '—' : String(v));
    const head = h('thead', {}, h('tr', {}, h('th', {}, ''), ...this.names.map(n => h('th', {}, n))));
    const row = (label: string, values: any[], cls = '') =>
      h('tr', { class: cls, dataset: { key: label } }, h('th', {}, label), ...values.map(cell));

    const overview = [
      row('Status', descs.map(d => jobStatus(d))),
      row('Algorithm', descs.map(d => d.AlgorithmSpecification?.TrainingImage || d.AppSpecification?.ImageUri || '')),
      row('Duration', descs.map(d => duration(d.TrainingTimeInSeconds))),
      row('Place', descs.map(d => d['nbsage:Backend']))
    ];
    const hps = descs.map(d => (d.HyperParameters || {}) as Json);
    // the SDK's own sagemaker_* entries (region, job name, submit directory) say nothing about the run
    const keys = [...new Set(hps.flatMap(x => Object.keys(x)))]
      .filter(k => !k.startsWith('sagemaker_') || k === 'sagemaker_program')
      .sort();
    const differ = keys.filter(k => new Set(hps.map(x => x[k])).size > 1);
    const same = keys.filter(k => !differ.includes(k));
    const finals = descs.map(d => Object.fromEntries((d.FinalMetricDataList || []).map((m: Json) => [m.MetricName, m.Value])));
    const metricNames = [...new Set(finals.flatMap(f => Object.keys(f)))].sort();
    const table = (...rows: HTMLElement[]) => h('table', { class: 'nbsage-table nbsage-compare-table' }, head.cloneNode(true), h('tbody', {}, ...rows));
    this.node.replaceChildren(
      h('h2', {}, `Compare: ${this.names.join(', ')}`),
      h('section', { class: 'nbsage-detail-section' }, h('h3', {}, 'Overview'), table(...overview)),
      h('section', { class: 'nbsage-detail-section', dataset: { section: 'differ' } },
        h('h3', {}, `Hyperparameters that differ (${differ.length})`),
        differ.length ? table(...differ.map(k => row(k, hps.map(x => x[k]), 'nbsage-differs'))) : h('p', { class: 'nbsage-empty' }, 'None: the jobs share every hyperparameter.')),
      h('section', { class: 'nbsage-detail-section' }, h('h3', {}, 'Final metrics'),
        table(...metricNames.map(m => row(m, finals.map(f => (f[m] === undefined ? undefined : number(f[m]))))))),
      h('section', { class: 'nbsage-detail-section', dataset: { section: 'charts' } }, h('h3', {}, 'Metrics over steps'), this._charts.node),
      h('details', { class: 'nbsage-detail-section' }, h('summary', {}, `Hyperparameters they share (${same.length})`),
        table(...same.map(k => row(k, hps.map(x => x[k])))))
    );
    this._charts.update(new Map(this.names.map((n, i) => [n, metrics[i].Metrics as IPoint[]])));
  }
}
