/**
 * A job's detail in the main area: overview (the describe fields, FailureReason verbatim), one
 * chart per metric over steps (live while it runs), the log with follow, hyperparameters,
 * channels, artifacts (the model.tar.gz listing and a download link) and the status history.
 * Kept live by the server's notices for this job.
 */
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { downloadUrl, EventStream, INotice, Json, jobStatus, request, TERMINAL } from './api';
import { ChartGrid, IPoint } from './charts';
import { CommandIDs } from './commands';
import { duration, h, number, statusBadge, time } from './dom';

const OVERVIEW_SKIP = new Set([
  'HyperParameters',
  'InputDataConfig',
  'SecondaryStatusTransitions',
  'FinalMetricDataList',
  'ProcessingInputs',
  'ProcessingOutputConfig'
]);

export function table(rows: [string, any][], cls = ''): HTMLElement {
  return h(
    'table',
    { class: `nbsage-kv ${cls}` },
    h(
      'tbody',
      {},
      ...rows.map(([k, v]) =>
        h(
          'tr',
          { dataset: { key: k } },
          h('th', {}, k),
          h('td', {}, typeof v === 'object' && v !== null ? h('code', {}, JSON.stringify(v)) : String(v ?? ''))
        )
      )
    )
  );
}

export class JobDetail extends Widget {
  private _desc: Json = {};
  private _points: IPoint[] = [];
  private _metricAfter = 0;
  private _logSince = 0;
  private _charts = new ChartGrid();
  private _header = h('div', { class: 'nbsage-detail-header' });
  private _overview = h('div', { class: 'nbsage-overview' });
  private _finals = h('div', { class: 'nbsage-finals' });
  private _log = h('pre', { class: 'nbsage-log', 'aria-label': 'Log' });
  private _follow: HTMLInputElement;
  private _hps = h('div');
  private _channels = h('div');
  private _artifacts = h('div');
  private _history = h('div');
  private _artifactsRead = false;

  constructor(
    readonly jobName: string,
    private events: EventStream,
    private commands: CommandRegistry
  ) {
    super();
    this.addClass('nbsage-detail');
    this.addClass('nbsage-job-detail');
    this.node.dataset.job = jobName;
    this.id = `nbsage-job-${jobName}`;
    this.title.label = jobName;
    this.title.caption = `nbsage job ${jobName}`;
    this.title.closable = true;
    this._follow = h('input', { type: 'checkbox', checked: true }) as HTMLInputElement;
    const section = (title: string, key: string, ...body: HTMLElement[]) =>
      h('section', { class: 'nbsage-detail-section', dataset: { section: key } }, h('h3', {}, title), ...body);
    this.node.append(
      this._header,
      section('Overview', 'overview', this._overview),
      section('Metrics', 'metrics', this._charts.node, this._finals),
      section(
        'Logs',
        'logs',
        h('label', { class: 'nbsage-follow' }, this._follow, ' follow'),
        this._log
      ),
      section('Hyperparameters', 'hyperparameters', this._hps),
      section('Channels', 'channels', this._channels),
      section('Artifacts', 'artifacts', this._artifacts),
      section('Status history', 'history', this._history)
    );
    events.notices.connect(this._onNotice, this);
    void this._readAll();
  }

  dispose(): void {
    this.events.notices.disconnect(this._onNotice, this);
    this._charts.dispose();
    super.dispose();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    this._charts.resize();
  }

  protected onAfterShow(msg: Message): void {
    this._charts.resize();
  }

  private _onNotice(_: EventStream, notice: INotice): void {
    if (notice.type === 'connected') {
      void this._readAll();
    } else if (notice.type === 'jobs' && notice.changed?.includes(this.jobName)) {
      void this._readDescription();
    } else if (notice.type === 'logs' && notice.job === this.jobName) {
      void this._readLogs();
    } else if (notice.type === 'metrics' && notice.job === this.jobName) {
      void this._readMetrics();
    }
  }

  private async _readAll(): Promise<void> {
    await Promise.all([this._readDescription(), this._readLogs(), this._readMetrics()]);
  }

  private async _readDescription(): Promise<void> {
    try {
      this._desc = await request(`jobs/${encodeURIComponent(this.jobName)}`);
    } catch (e) {
      this._header.replaceChildren(h('div', { class: 'nbsage-error' }, (e as Error).message));
      return;
    }
    this._renderDescription();
    const status = jobStatus(this._desc);
    if (TERMINAL.includes(status)) {
      void this._readLogs(); // the last lines, written as it ended
      void this._readMetrics();
      if (!this._artifactsRead && this._desc.ModelArtifacts?.S3ModelArtifacts) {
        this._artifactsRead = true;
        void this._readArtifacts();
      }
    }
  }

  private async _readLogs(): Promise<void> {
    const since = this._logSince;
    const answer = await request(`jobs/${encodeURIComponent(this.jobName)}/logs?since=${since}`).catch(() => null);
    if (!answer || since !== this._logSince) {
      return; // another read got there first
    }
    this._logSince = answer.next;
    const text = answer.events.map((e: Json) => e.Message + '\n').join('');
    if (text) {
      this._log.append(document.createTextNode(text));
      if (this._follow.checked) {
        this._log.scrollTop = this._log.scrollHeight;
      }
    }
  }

  private async _readMetrics(): Promise<void> {
    const after = this._metricAfter;
    const answer = await request(`jobs/${encodeURIComponent(this.jobName)}/metrics?after=${after}`).catch(() => null);
    if (!answer || after !== this._metricAfter || !answer.Metrics.length) {
      return;
    }
    this._metricAfter = answer.Metrics[answer.Metrics.length - 1].id;
    this._points.push(...answer.Metrics);
    this._charts.update(new Map([[this.jobName, this._points]]));
  }

  private async _readArtifacts(): Promise<void> {
    try {
      const listing = await request(`jobs/${encodeURIComponent(this.jobName)}/artifacts`);
      this._artifacts.replaceChildren(
        h('p', {}, h('code', {}, listing.S3ModelArtifacts), ' ',
          h('a', {
            class: 'nbsage-download',
            href: downloadUrl(`jobs/${encodeURIComponent(this.jobName)}/artifacts?download=1`),
            download: `${this.jobName}-model.tar.gz`
          }, 'Download')),
        table(listing.Files.map((f: Json) => [f.Name, `${f.Size} bytes`]), 'nbsage-artifact-files')
      );
    } catch (e) {
      this._artifacts.replaceChildren(h('p', { class: 'nbsage-error' }, (e as Error).message));
    }
  }

  private _renderDescription(): void {
    const d = this._desc;
    const status = jobStatus(d);
    const kind = d['nbsage:Kind'];
    const running = !TERMINAL.includes(status);
    const [step, total] = d['nbsage:Progress'] || [null, null];
    const button = (label: string, command: string, args: Json) =>
      h('button', { class: `jp-mod-styled nbsage-action-${label.toLowerCase()}`, onclick: () => this.commands.execute(command, args) }, label);
    this._header.replaceChildren(
      h('h2', {}, this.jobName),
      statusBadge(status, d.SecondaryStatus),
      total && running ? h('progress', { max: total, value: step || 0, title: `${step || 0}/${total}` }) : '',
      h(
        'span',
        { class: 'nbsage-header-actions' },
        running && status !== 'Stopping' ? button('Stop', CommandIDs.stopJob, { name: this.jobName }) : null,
        kind === 'training' && status === 'Completed' ? button('Deploy', CommandIDs.deploy, { name: this.jobName }) : null,
        button('Insert', CommandIDs.insert, { what: 'job', name: this.jobName, kind })
      )
    );
    const overview: [string, any][] = [];
    if (d.FailureReason) {
      overview.push(['FailureReason', d.FailureReason]);
    }
    for (const [k, v] of Object.entries(d)) {
      if (!OVERVIEW_SKIP.has(k) && k !== 'FailureReason' && v !== null && v !== undefined && v !== '') {
        overview.push([k, k.endsWith('Time') && typeof v === 'string' ? `${time(v)} (${v})` : v]);
      }
    }
    if (d.TrainingTimeInSeconds !== undefined) {
      overview.push(['Duration', duration(d.TrainingTimeInSeconds)]);
    }
    this._overview.replaceChildren(
      d.FailureReason ? h('pre', { class: 'nbsage-failure' }, d.FailureReason) : '',
      table(overview)
    );
    const finals = (d.FinalMetricDataList || []) as Json[];
    this._finals.replaceChildren(
      finals.length
        ? table(finals.map(m => [m.MetricName, number(m.Value)]), 'nbsage-final-metrics')
        : ''
    );
    const hps = d.HyperParameters || d.Environment || {};
    this._hps.replaceChildren(
      Object.keys(hps).length ? table(Object.entries(hps)) : h('p', { class: 'nbsage-empty' }, 'None')
    );
    const channels = (d.InputDataConfig || d.ProcessingInputs || []) as Json[];
    this._channels.replaceChildren(
      channels.length
        ? table(
            channels.map(c => [
              c.ChannelName || c.InputName,
              c.DataSource?.S3DataSource?.S3Uri || c.S3Input?.S3Uri || c.DataSource || c
            ])
          )
        : h('p', { class: 'nbsage-empty' }, 'None')
    );
    if (!this._artifactsRead) {
      this._artifacts.replaceChildren(
        h('p', { class: 'nbsage-empty' }, d.ModelArtifacts?.S3ModelArtifacts || 'None yet')
      );
    }
    const history = (d.SecondaryStatusTransitions || []) as Json[];
    this._history.replaceChildren(
      h(
        'table',
        { class: 'nbsage-table nbsage-history' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Status'), h('th', {}, 'Start'), h('th', {}, 'End'), h('th', {}, 'Message'))),
        h(
          'tbody',
          {},
          ...history.map(t =>
            h('tr', {}, h('td', {}, t.Status), h('td', {}, time(t.StartTime)), h('td', {}, time(t.EndTime)), h('td', {}, t.StatusMessage))
          )
        )
      )
    );
  }
}
