/**
 * An endpoint's detail: status, model, variants and instance counts, the invocations made through
 * this console (count, errors, mean latency), and a test-invoke box.
 */
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { EventStream, INotice, Json, post, request } from './api';
import { CommandIDs } from './commands';
import { h, statusBadge, time } from './dom';
import { table } from './jobdetail';

export class EndpointDetail extends Widget {
  private _header = h('div', { class: 'nbsage-detail-header' });
  private _overview = h('div');
  private _variants = h('div');
  private _stats = h('div');
  private _answer = h('pre', { class: 'nbsage-invoke-answer', 'aria-label': 'Response' });
  private _body: HTMLTextAreaElement;
  private _contentType: HTMLInputElement;
  private _accept: HTMLInputElement;

  constructor(
    readonly endpointName: string,
    private events: EventStream,
    private commands: CommandRegistry
  ) {
    super();
    this.addClass('nbsage-detail');
    this.addClass('nbsage-endpoint-detail');
    this.node.dataset.endpoint = endpointName;
    this.id = `nbsage-endpoint-${endpointName}`;
    this.title.label = endpointName;
    this.title.caption = `nbsage endpoint ${endpointName}`;
    this.title.closable = true;
    this._body = h('textarea', { class: 'jp-mod-styled nbsage-invoke-body', rows: 4, 'aria-label': 'Request body', placeholder: '1.5,2.0,3.1' }) as HTMLTextAreaElement;
    this._contentType = h('input', { class: 'jp-mod-styled', value: 'text/csv', 'aria-label': 'Content type' }) as HTMLInputElement;
    this._accept = h('input', { class: 'jp-mod-styled', placeholder: 'Accept (optional)', 'aria-label': 'Accept' }) as HTMLInputElement;
    const section = (title: string, key: string, ...body: HTMLElement[]) =>
      h('section', { class: 'nbsage-detail-section', dataset: { section: key } }, h('h3', {}, title), ...body);
    this.node.append(
      this._header,
      section('Overview', 'overview', this._overview),
      section('Variants', 'variants', this._variants),
      section('Invocations', 'invocations', this._stats),
      section(
        'Test invoke',
        'invoke',
        this._body,
        h('div', { class: 'nbsage-toolbar-row' }, this._contentType, this._accept,
          h('button', { class: 'jp-mod-styled jp-mod-accept nbsage-invoke', onclick: () => this._invoke() }, 'Invoke')),
        this._answer
      )
    );
    events.notices.connect(this._onNotice, this);
    void this._read();
  }

  dispose(): void {
    this.events.notices.disconnect(this._onNotice, this);
    super.dispose();
  }

  private _onNotice(_: EventStream, notice: INotice): void {
    if (notice.type === 'connected' || (notice.type === 'endpoints' && notice.changed?.includes(this.endpointName))) {
      void this._read();
    }
  }

  private async _read(): Promise<void> {
    let d: Json;
    try {
      d = await request(`endpoints/${encodeURIComponent(this.endpointName)}`);
    } catch (e) {
      this._header.replaceChildren(h('h2', {}, this.endpointName), h('div', { class: 'nbsage-error' }, (e as Error).message));
      return;
    }
    this._header.replaceChildren(
      h('h2', {}, this.endpointName),
      statusBadge(d.EndpointStatus),
      h('span', { class: 'nbsage-header-actions' },
        h('button', { class: 'jp-mod-styled nbsage-action-delete', onclick: () => this.commands.execute(CommandIDs.deleteEndpoint, { name: this.endpointName }) }, 'Delete'),
        h('button', { class: 'jp-mod-styled nbsage-action-insert', onclick: () => this.commands.execute(CommandIDs.insert, { what: 'endpoint', name: this.endpointName }) }, 'Insert'))
    );
    const rows: [string, any][] = [];
    if (d.FailureReason) {
      rows.push(['FailureReason', d.FailureReason]);
    }
    for (const k of ['EndpointArn', 'EndpointConfigName', 'ModelDataUrl', 'Url', 'LogFile', 'CreationTime', 'LastModifiedTime']) {
      if (d[k]) {
        rows.push([k, k.endsWith('Time') ? `${time(d[k])} (${d[k]})` : d[k]]);
      }
    }
    this._overview.replaceChildren(table(rows));
    this._variants.replaceChildren(
      h('table', { class: 'nbsage-table' },
        h('thead', {}, h('tr', {}, ...['Variant', 'Image', 'Instance type', 'Instances (current/desired)', 'Weight'].map(t => h('th', {}, t)))),
        h('tbody', {}, ...(d.ProductionVariants || []).map((v: Json) =>
          h('tr', {}, h('td', {}, v.VariantName), h('td', {}, v.DeployedImages?.[0]?.ResolvedImage || ''),
            h('td', {}, v.InstanceType || ''), h('td', {}, `${v.CurrentInstanceCount}/${v.DesiredInstanceCount}`),
            h('td', {}, String(v.CurrentWeight ?? '')))))
      )
    );
    const s = d['nbsage:Invocations'] || {};
    this._stats.replaceChildren(
      table([
        ['Invocations', s.Invocations ?? 0],
        ['Errors', s.InvocationErrors ?? 0],
        ['Mean latency', s.ModelLatencyMs !== null && s.ModelLatencyMs !== undefined ? `${s.ModelLatencyMs} ms` : '']
      ], 'nbsage-invocation-stats'),
      h('p', { class: 'nbsage-sub' }, 'Counted for the invocations made through this console since the server started.')
    );
  }

  private async _invoke(): Promise<void> {
    this._answer.textContent = '…';
    try {
      const a = await post(`endpoints/${encodeURIComponent(this.endpointName)}/invoke`, {
        Body: this._body.value,
        ContentType: this._contentType.value || 'text/csv',
        Accept: this._accept.value || undefined
      });
      this._answer.dataset.status = String(a.StatusCode);
      this._answer.textContent =
        a.StatusCode === 200 ? `${a.ContentType} · ${a.LatencyMs} ms\n${a.Body}` : `${a.StatusCode}: ${a.Error}`;
    } catch (e) {
      this._answer.dataset.status = 'error';
      this._answer.textContent = (e as Error).message;
    }
    void this._read();
  }
}
