/**
 * The left sidebar panel (widget id `nbsage-console`): Jobs, Endpoints and Models sections with
 * live rows and row actions. Rows are redrawn when the model changes, which happens when the
 * server announces a change; nothing here polls.
 */
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { field, Json, jobName, jobStatus, TERMINAL } from './api';
import { h, duration, number, statusBadge, time } from './dom';
import { ConsoleModel } from './model';
import { CommandIDs } from './commands';

const STATUSES = ['InProgress', 'Completed', 'Failed', 'Stopping', 'Stopped'];

export class ConsoleSidebar extends Widget {
  private _selected = new Set<string>();
  private _body: HTMLElement;
  private _compare: HTMLButtonElement;
  private _kind: HTMLSelectElement;

  constructor(
    private model: ConsoleModel,
    private commands: CommandRegistry
  ) {
    super();
    this.id = 'nbsage-console';
    this.addClass('nbsage-console');
    this.title.caption = 'nbsage: jobs, endpoints and models';

    const text = h('input', {
      class: 'jp-mod-styled nbsage-filter-text',
      type: 'search',
      placeholder: 'Filter jobs by name or algorithm',
      'aria-label': 'Filter jobs by name or algorithm'
    }) as HTMLInputElement;
    let typing = 0;
    text.addEventListener('input', () => {
      window.clearTimeout(typing);
      typing = window.setTimeout(
        () => this.model.setFilter({ text: text.value }),
        250
      );
    });
    const status = h(
      'select',
      { class: 'jp-mod-styled', 'aria-label': 'Status' },
      h('option', { value: '' }, 'Any status'),
      ...STATUSES.map(s => h('option', { value: s }, s))
    ) as HTMLSelectElement;
    status.addEventListener('change', () =>
      this.model.setFilter({ status: status.value })
    );
    this._kind = h('select', {
      class: 'jp-mod-styled',
      'aria-label': 'Kind'
    }) as HTMLSelectElement;
    this._kind.addEventListener('change', () =>
      this.model.setFilter({ kind: this._kind.value })
    );
    this._compare = h(
      'button',
      {
        class: 'jp-mod-styled jp-mod-accept nbsage-compare-button',
        disabled: true,
        title: 'Compare the checked jobs side by side',
        onclick: () =>
          this.commands.execute(CommandIDs.compare, {
            names: [...this._selected]
          })
      },
      'Compare'
    ) as HTMLButtonElement;
    this._body = h('div', { class: 'nbsage-sections' });
    this.node.append(
      h(
        'div',
        { class: 'nbsage-toolbar' },
        text,
        h('div', { class: 'nbsage-toolbar-row' }, status, this._kind, this._compare)
      ),
      this._body
    );
    model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const m = this.model;
    const kinds = ['', ...m.kinds];
    if (this._kind.options.length !== kinds.length) {
      const current = this._kind.value;
      this._kind.replaceChildren(
        ...kinds.map(k => h('option', { value: k }, k ? `${k} jobs` : 'Any kind'))
      );
      this._kind.value = current;
    }
    for (const name of [...this._selected]) {
      if (!m.jobs.some(j => jobName(j) === name)) {
        this._selected.delete(name);
      }
    }
    this._compare.disabled = this._selected.size < 2;
    this._body.replaceChildren(
      m.error ? h('div', { class: 'nbsage-error' }, m.error) : '',
      this._section('Jobs', 'jobs', m.jobs.length, this._jobsTable()),
      this._section('Endpoints', 'endpoints', m.endpoints.length, this._endpointsTable()),
      this._section('Models', 'models', m.models.length, this._modelsTable())
    );
  }

  private _section(title: string, key: string, count: number, body: HTMLElement): HTMLElement {
    return h(
      'details',
      { class: 'nbsage-section', open: true, dataset: { section: key } },
      h('summary', {}, `${title} (${count})`),
      body
    );
  }

  private _action(label: string, title: string, command: string, args: Json): HTMLElement {
    return h(
      'button',
      {
        class: `nbsage-action nbsage-action-${label.toLowerCase()}`,
        title,
        onclick: (e: Event) => {
          e.stopPropagation();
          void this.commands.execute(command, args);
        }
      },
      label
    );
  }

  private _jobsTable(): HTMLElement {
    const jobs = this.model.jobs;
    if (!jobs.length) {
      return h(
        'p',
        { class: 'nbsage-empty' },
        'No jobs yet. Start one with %%sm_train, an Estimator, or nbsage train.'
      );
    }
    const rows = jobs.map(row => {
      const name = jobName(row);
      const status = jobStatus(row);
      const kind = row['nbsage:Kind'];
      const objective = row['nbsage:ObjectiveMetric'];
      const progress = row['nbsage:Progress'];
      const check = h('input', {
        type: 'checkbox',
        'aria-label': `Select ${name} to compare`,
        checked: this._selected.has(name)
      }) as HTMLInputElement;
      check.addEventListener('click', e => e.stopPropagation());
      check.addEventListener('change', () => {
        if (check.checked) {
          this._selected.add(name);
        } else {
          this._selected.delete(name);
        }
        this._compare.disabled = this._selected.size < 2;
      });
      const running = !TERMINAL.includes(status);
      const actions = h(
        'div',
        { class: 'nbsage-actions' },
        this._action('Open', 'Open the job detail', CommandIDs.openJob, { name }),
        running && status !== 'Stopping'
          ? this._action('Stop', 'Stop this job', CommandIDs.stopJob, { name })
          : null,
        kind === 'training' && status === 'Completed'
          ? this._action('Deploy', 'Deploy the model to an endpoint', CommandIDs.deploy, { name })
          : null,
        this._action('Insert', 'Insert code for this job into the notebook', CommandIDs.insert, {
          what: 'job',
          name,
          kind
        })
      );
      const meta = [
        kind,
        row['nbsage:Algorithm'],
        `${row['nbsage:Backend'] || ''}${row['nbsage:InstanceCount'] ? ` ×${row['nbsage:InstanceCount']}` : ''}`,
        time(field(row, 'StartTime') || row.CreationTime),
        duration(row['nbsage:DurationSeconds'])
      ].filter(Boolean);
      const tr = h(
        'tr',
        {
          class: 'nbsage-job-row',
          dataset: { job: name, status, kind },
          title: row.FailureReason || name,
          ondblclick: () => this.commands.execute(CommandIDs.openJob, { name })
        },
        h('td', { class: 'nbsage-check' }, check),
        h(
          'td',
          { class: 'nbsage-main' },
          h('div', { class: 'nbsage-name' }, name),
          h(
            'div',
            { class: 'nbsage-line' },
            statusBadge(status, row.SecondaryStatus),
            progress && progress[1] && running
              ? h('progress', { max: progress[1], value: progress[0] ?? 0, title: `${progress[0] ?? 0}/${progress[1]}` })
              : ''
          ),
          h('div', { class: 'nbsage-sub' }, meta.join(' · ')),
          objective
            ? h('div', { class: 'nbsage-metric', title: 'objective metric' }, `${objective.MetricName} ${number(objective.Value)}`)
            : null,
          row.FailureReason ? h('div', { class: 'nbsage-sub nbsage-reason' }, row.FailureReason) : null,
          actions
        )
      );
      return tr;
    });
    return h(
      'table',
      { class: 'nbsage-table nbsage-jobs' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['', 'Job'].map(t => h('th', {}, t))
        )
      ),
      h('tbody', {}, ...rows)
    );
  }

  private _endpointsTable(): HTMLElement {
    const endpoints = this.model.endpoints;
    if (!endpoints.length) {
      return h('p', { class: 'nbsage-empty' }, 'No endpoints. Deploy a completed job to get one.');
    }
    const rows = endpoints.map(e => {
      const name = e.EndpointName;
      const variant = (e.ProductionVariants || [])[0] || {};
      return h(
        'tr',
        {
          class: 'nbsage-endpoint-row',
          dataset: { endpoint: name, status: e.EndpointStatus },
          title: e.FailureReason || e.Url || name,
          ondblclick: () => this.commands.execute(CommandIDs.openEndpoint, { name })
        },
        h(
          'td',
          { class: 'nbsage-main' },
          h('div', { class: 'nbsage-name' }, name),
          h('div', { class: 'nbsage-line' }, statusBadge(e.EndpointStatus)),
          h(
            'div',
            { class: 'nbsage-sub' },
            `instances ${variant.CurrentInstanceCount ?? ''}/${variant.DesiredInstanceCount ?? ''} · ${time(e.CreationTime)}`
          ),
          e.FailureReason ? h('div', { class: 'nbsage-sub nbsage-reason' }, e.FailureReason) : null,
          h(
          'div',
          { class: 'nbsage-actions' },
          this._action('Open', 'Open the endpoint detail', CommandIDs.openEndpoint, { name }),
          this._action('Delete', 'Delete this endpoint (stops its server)', CommandIDs.deleteEndpoint, { name }),
          this._action('Insert', 'Insert code for this endpoint into the notebook', CommandIDs.insert, {
            what: 'endpoint',
            name
          })
        )
        )
      );
    });
    return h(
      'table',
      { class: 'nbsage-table nbsage-endpoints' },
      h('thead', {}, h('tr', {}, ...['Endpoint'].map(t => h('th', {}, t)))),
      h('tbody', {}, ...rows)
    );
  }

  private _modelsTable(): HTMLElement {
    const models = this.model.models;
    if (!models.length) {
      return h('p', { class: 'nbsage-empty' }, 'No models yet: a completed training job makes one.');
    }
    const rows = models.map(m => {
      const name = m.ModelName;
      const job = m['nbsage:TrainingJobName'];
      return h(
        'tr',
        { class: 'nbsage-model-row', dataset: { model: name }, title: m.PrimaryContainer?.ModelDataUrl || '' },
        h(
          'td',
          { class: 'nbsage-main' },
          h('div', { class: 'nbsage-name' }, name),
          h(
            'div',
            { class: 'nbsage-sub' },
            [m.PrimaryContainer?.Image, (m['nbsage:Endpoints'] || []).length ? `serving: ${m['nbsage:Endpoints'].join(', ')}` : '']
              .filter(Boolean)
              .join(' · ')
          ),
          h(
          'div',
          { class: 'nbsage-actions' },
          job ? this._action('Open', 'Open the training job', CommandIDs.openJob, { name: job }) : null,
          job ? this._action('Deploy', 'Deploy this model to a new endpoint', CommandIDs.deploy, { name: job }) : null,
          this._action('Insert', 'Insert code for this model into the notebook', CommandIDs.insert, {
            what: 'model',
            name,
            url: m.PrimaryContainer?.ModelDataUrl || ''
          })
        )
        )
      );
    });
    return h(
      'table',
      { class: 'nbsage-table nbsage-models' },
      h('thead', {}, h('tr', {}, ...['Model'].map(t => h('th', {}, t)))),
      h('tbody', {}, ...rows)
    );
  }
}

