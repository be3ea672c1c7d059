/**
 * What the sidebar and the Running panel show: the jobs, endpoints and models, read once and
 * read again only when the server announces a change (nbsage.jupyter.events).
 */
import { Signal, ISignal } from '@lumino/signaling';
import { EventStream, INotice, Json, request } from './api';

export interface IFilter {
  status: string;
  kind: string;
  text: string;
}

export class ConsoleModel {
  jobs: Json[] = [];
  endpoints: Json[] = [];
  models: Json[] = [];
  kinds: string[] = [];
  error = '';
  filter: IFilter = { status: '', kind: '', text: '' };
  private _changed = new Signal<this, void>(this);
  private _pending: Promise<void> | null = null;
  private _again = false;

  constructor(readonly events: EventStream) {
    events.notices.connect(this._onNotice, this);
    void this.refresh();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  setFilter(filter: Partial<IFilter>): void {
    this.filter = { ...this.filter, ...filter };
    void this.refresh();
  }

  /** Read everything afresh (coalescing notices that arrive while a read is under way). */
  refresh(): Promise<void> {
    if (this._pending) {
      this._again = true;
      return this._pending;
    }
    this._pending = this._read().finally(() => {
      this._pending = null;
      if (this._again) {
        this._again = false;
        void this.refresh();
      }
    });
    return this._pending;
  }

  private async _read(): Promise<void> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(this.filter)) {
      if (v) {
        q.set(k, v);
      }
    }
    try {
      const [jobs, endpoints, models, kinds] = await Promise.all([
        request<{ Jobs: Json[] }>(`jobs?${q}`),
        request<{ Endpoints: Json[] }>('endpoints'),
        request<{ Models: Json[] }>('models'),
        request<{ JobKinds: string[] }>('job-kinds')
      ]);
      this.jobs = jobs.Jobs;
      this.endpoints = endpoints.Endpoints;
      this.models = models.Models;
      this.kinds = kinds.JobKinds;
      this.error = '';
    } catch (e) {
      this.error = (e as Error).message;
    }
    this._changed.emit();
  }

  private _onNotice(_: EventStream, notice: INotice): void {
    if (['jobs', 'endpoints', 'connected'].includes(notice.type)) {
      void this.refresh();
    } else if (notice.type === 'metrics') {
      void this.refresh(); // the rows show the objective metric
    }
  }
}
