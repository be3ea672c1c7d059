/**
 * An endpoint's detail: status, model, variants (weights, instance counts, status), the shadow test
 * (per-variant counts and latency, agreement, promote), automatic scaling (targets, policies,
 * activities), the monitoring schedules watching it (executions, violations), the invocations made
 * through this console (count, errors, mean latency), and a test-invoke box. Sections with nothing
 * to show are hidden.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { EventStream, INotice, Json, post, request } from './api';
import { CommandIDs } from './commands';
import { h, number, statusBadge, time } from './dom';
import { table } from './jobdetail';

export class EndpointDetail extends Widget {
  private _header = h('div', { class: 'nbsage-detail-header' });
  private _overview = h('div');
  private _variants = h('div');
  private _shadow = h('div');
  private _scaling = h('div');
  private _monitoring = h('div');
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
      section('Shadow test', 'shadow', this._shadow),
      section('Automatic scaling', 'scaling', this._scaling),
      section('Monitoring', 'monitoring', this._monitoring),
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
    const variantRow = (v: Json, role: string) =>
      h('tr', { dataset: { variant: v.VariantName, role } },
        h('td', {}, v.VariantName), h('td', {}, role),
        h('td', { dataset: { field: 'status' }, title: v.VariantStatus?.[0]?.StatusMessage ?? '' },
          v.VariantStatus?.[0]?.Status ?? 'InService'),
        h('td', {}, v.ModelName || v.DeployedImages?.[0]?.ResolvedImage || ''),
        h('td', {}, v.InstanceType || ''),
        h('td', { dataset: { field: 'instances' } }, `${v.CurrentInstanceCount ?? ''}/${v.DesiredInstanceCount ?? ''}`),
        h('td', { dataset: { field: 'weight' } }, `${v.CurrentWeight ?? ''}/${v.DesiredWeight ?? ''}`));
    this._variants.replaceChildren(
      grid(['Variant', 'Role', 'Status', 'Model', 'Instance type', 'Instances (current/desired)', 'Weight (current/desired)'], [
        ...(d.ProductionVariants || []).map((v: Json) => variantRow(v, 'production')),
        ...(d.ShadowProductionVariants || []).map((v: Json) => variantRow(v, 'shadow'))
      ], 'nbsage-variants')
    );
    this._drawScaling(d.AutoScaling);
    void this._readShadow(Boolean(d.ShadowProductionVariants?.length));
    void this._readMonitoring();
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

  /** The shadow report (GET .../shadow): hidden when the endpoint has no shadow variant. */
  private async _readShadow(hasShadow: boolean): Promise<void> {
    show(this._shadow, hasShadow);
    if (!hasShadow) {
      return;
    }
    let r: Json;
    try {
      r = await request(`endpoints/${encodeURIComponent(this.endpointName)}/shadow`);
    } catch (e) {
      this._shadow.replaceChildren(h('div', { class: 'nbsage-error' }, (e as Error).message));
      return;
    }
    const ms = (v: any) => (v === null || v === undefined ? '' : `${number(v)} ms`);
    const variants = Object.entries(r.Variants || {}) as [string, Json][];
    const a: Json = r.Agreement || {};
    const agreement: [string, any][] = [['Problem type', a.ProblemType ?? 'unknown'], ['Compared', a.Compared ?? 0]];
    if (a.LabelAgreement !== undefined) {
      agreement.push(['Label agreement', `${number(100 * a.LabelAgreement)} %`]);
    }
    for (const [k, label] of [['MeanAbsoluteDifference', 'Mean absolute difference'], ['MaxAbsoluteDifference', 'Max absolute difference'], ['MeanDifference', 'Mean difference']]) {
      if (a[k] !== undefined) {
        agreement.push([label, number(a[k])]);
      }
    }
    this._shadow.replaceChildren(
      grid(['Variant', 'Role', 'Invocations', 'Errors', 'Latency p50', 'p90', 'p99'],
        variants.map(([name, v]) => h('tr', { dataset: { variant: name, role: v.Role } },
          h('td', {}, name), h('td', {}, v.Role),
          h('td', { dataset: { field: 'invocations' } }, String(v.Invocations ?? 0)),
          h('td', { dataset: { field: 'errors' } }, String(v.Errors ?? 0)),
          h('td', { dataset: { field: 'p50' } }, ms(v.LatencyP50)),
          h('td', { dataset: { field: 'p90' } }, ms(v.LatencyP90)),
          h('td', { dataset: { field: 'p99' } }, ms(v.LatencyP99)))), 'nbsage-shadow-variants'),
      table(agreement, 'nbsage-shadow-agreement'),
      a.Confusion ? confusion(a.Confusion, r.ProductionVariant, r.ShadowVariant) : '',
      h('p', { class: 'nbsage-sub' }, 'Latency and agreement from the sample of requests sent to both variants; the shadow\'s answers never reach the caller.'),
      h('button', { class: 'jp-mod-styled jp-mod-warn nbsage-action-promote', onclick: () => this._promote(r.ShadowVariant) }, 'Promote shadow')
    );
  }

  private async _promote(shadow: string): Promise<void> {
    const answer = await showDialog({
      title: 'Promote shadow',
      body: `Make ${shadow} the production variant of ${this.endpointName}? The endpoint updates without dropping a request and the shadow test ends.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Promote' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await post(`endpoints/${encodeURIComponent(this.endpointName)}/shadow/promote`);
    } catch (e) {
      void showErrorMessage(`Promote ${shadow}`, (e as Error).message);
    }
    void this._read();
  }

  /** describe_endpoint's AutoScaling: each scalable variant's bounds and policies, the latest activities. */
  private _drawScaling(scaling: Json | undefined): void {
    show(this._scaling, Boolean(scaling));
    if (!scaling) {
      return;
    }
    const policy = (p: Json) => {
      const metric = p.PredefinedMetricSpecification?.PredefinedMetricType || p.CustomizedMetricSpecification?.MetricName || '';
      return `${p.PolicyName}: ${metric} → ${p.TargetValue}` +
        (p.ScaleOutCooldown !== undefined ? `, out cooldown ${p.ScaleOutCooldown} s` : '') +
        (p.ScaleInCooldown !== undefined ? `, in cooldown ${p.ScaleInCooldown} s` : '') +
        (p.DisableScaleIn ? ', scale-in disabled' : '');
    };
    const targets: Json[] = scaling.ScalableTargets || [];
    this._scaling.replaceChildren(
      targets.length === 0 ? h('p', { class: 'nbsage-sub' }, 'No variant scales automatically now.') : grid(['Variant', 'Min', 'Max', 'Policies'],
        targets.map((t: Json) => h('tr', { dataset: { variant: t.VariantName } },
          h('td', {}, t.VariantName), h('td', {}, String(t.MinCapacity)), h('td', {}, String(t.MaxCapacity)),
          h('td', {}, (t.Policies || []).map(policy).join('; ')))), 'nbsage-scaling-targets'),
      h('h4', {}, 'Scaling activities'),
      grid(['Time', 'Variant', 'Instances', 'Status', 'Cause'],
        (scaling.ScalingActivities || []).map((a: Json) => h('tr', { dataset: { activity: a.ActivityId, direction: a.Direction } },
          h('td', { title: a.StartTime }, time(a.StartTime)),
          h('td', {}, String(a.ResourceId || '').split('/').pop() || ''),
          h('td', { dataset: { field: 'counts' } }, `${a.FromInstanceCount} → ${a.ToInstanceCount}`),
          h('td', { title: a.StatusMessage || '' }, a.StatusCode || ''),
          h('td', {}, a.Cause || ''))), 'nbsage-scaling-activities')
    );
  }

  /** The monitoring schedules that watch this endpoint: their latest executions and violations. */
  private async _readMonitoring(): Promise<void> {
    let schedules: Json[];
    try {
      const list = await request('monitoring-schedules');
      schedules = (list.MonitoringScheduleSummaries || []).filter((s: Json) => s.EndpointName === this.endpointName);
      schedules = await Promise.all(schedules.map(s => request(`monitoring-schedules/${encodeURIComponent(s.MonitoringScheduleName)}`)));
    } catch (e) {
      show(this._monitoring, true);
      this._monitoring.replaceChildren(h('div', { class: 'nbsage-error' }, (e as Error).message));
      return;
    }
    show(this._monitoring, schedules.length > 0);
    this._monitoring.replaceChildren(...schedules.map(s => monitoringSchedule(s)));
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

/** A table with a header row (the detail views' lists). */
function grid(head: string[], rows: HTMLElement[], cls = ''): HTMLElement {
  return h('table', { class: `nbsage-table nbsage-grid ${cls}` },
    h('thead', {}, h('tr', {}, ...head.map(t => h('th', {}, t)))),
    h('tbody', {}, ...rows));
}

function show(el: HTMLElement, visible: boolean): void {
  const section = el.closest('section');
  if (section) {
    (section as HTMLElement).hidden = !visible;
  }
}

/** The classifier's confusion between production (rows) and shadow (columns) labels. */
function confusion(c: { [label: string]: { [label: string]: number } }, production: string, shadow: string): HTMLElement {
  const labels = [...new Set([...Object.keys(c), ...Object.values(c).flatMap(r => Object.keys(r))])].sort();
  return grid([`${production} ↓ · ${shadow} →`, ...labels],
    labels.map(a => h('tr', { dataset: { label: a } }, h('th', {}, a),
      ...labels.map(b => h('td', { dataset: { shadow: b } }, String(c[a]?.[b] ?? 0))))), 'nbsage-confusion');
}

function monitoringSchedule(s: Json): HTMLElement {
  const executions: Json[] = (s.Executions || []).slice(-5).reverse();
  const violations: Json[] | null = s.LatestConstraintViolations ?? null;
  return h('div', { class: 'nbsage-monitoring-schedule', dataset: { schedule: s.MonitoringScheduleName } },
    h('h4', {}, s.MonitoringScheduleName, ' ', statusBadge(s.MonitoringScheduleStatus),
      h('span', { class: 'nbsage-sub' }, ` ${s.MonitoringScheduleConfig?.ScheduleConfig?.ScheduleExpression ?? ''}`)),
    grid(['Scheduled', 'Status', 'Items', 'Reason'],
      executions.map(e => h('tr', { dataset: { status: e.MonitoringExecutionStatus } },
        h('td', { title: e.ScheduledTime }, time(e.ScheduledTime)),
        h('td', {}, e.MonitoringExecutionStatus), h('td', {}, String(e.ItemCount ?? '')),
        h('td', {}, e.FailureReason || ''))), 'nbsage-monitoring-executions'),
    violations === null
      ? h('p', { class: 'nbsage-sub' }, 'No completed execution yet.')
      : violations.length === 0
        ? h('p', { class: 'nbsage-sub nbsage-no-violations' }, 'The latest execution found no violation.')
        : grid(['Feature', 'Check', 'Description'],
          violations.map(v => h('tr', { dataset: { feature: v.feature_name, check: v.constraint_check_type } },
            h('td', {}, v.feature_name), h('td', {}, v.constraint_check_type), h('td', {}, v.description))),
          'nbsage-violations'));
}
