/**
 * The console's REST API (/nbsage/api/, described in nbsage/jupyter/openapi.yaml) and its
 * websocket of change notices. Requests go through JupyterLab's ServerConnection, so they carry
 * the token (or cookie) and the XSRF header the server asks for.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Signal, ISignal } from '@lumino/signaling';

export type Json = { [key: string]: any };

/** An answer other than 2xx, with the server's one-line message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

const settings = () => ServerConnection.makeSettings();

export async function request<T = Json>(
  path: string,
  init: RequestInit = {}
): Promise<T> {
  const s = settings();
  const url = URLExt.join(s.baseUrl, 'nbsage', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, s);
  if (response.status === 204) {
    return {} as T;
  }
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new ApiError(response.status, data.message || response.statusText);
  }
  return data as T;
}

export function post<T = Json>(path: string, body?: Json): Promise<T> {
  return request<T>(path, {
    method: 'POST',
    body: body ? JSON.stringify(body) : ''
  });
}

export function downloadUrl(path: string): string {
  const s = settings();
  return URLExt.join(s.baseUrl, 'nbsage', 'api', path);
}

/** A notice from nbsage.jupyter.events. */
export interface INotice {
  type: 'jobs' | 'endpoints' | 'logs' | 'metrics' | 'connected';
  job?: string;
  changed?: string[];
}

/**
 * The one websocket of the page: every view listens on `notices` rather than polling. It
 * reconnects after a drop and then announces `connected`, on which views read afresh.
 */
export class EventStream {
  private _notices = new Signal<this, INotice>(this);
  private _socket: WebSocket | null = null;
  private _closed = false;
  private _retry = 500;

  constructor() {
    this._open();
  }

  get notices(): ISignal<this, INotice> {
    return this._notices;
  }

  dispose(): void {
    this._closed = true;
    this._socket?.close();
  }

  private _open(): void {
    const s = settings();
    let url = URLExt.join(s.wsUrl, 'nbsage', 'api', 'events');
    if (s.token) {
      url += `?token=${encodeURIComponent(s.token)}`;
    }
    const socket = new WebSocket(url);
    this._socket = socket;
    socket.onopen = () => {
      this._retry = 500;
      this._notices.emit({ type: 'connected' });
    };
    socket.onmessage = event => {
      try {
        this._notices.emit(JSON.parse(event.data) as INotice);
      } catch {
        /* not a notice */
      }
    };
    socket.onclose = () => {
      if (!this._closed) {
        window.setTimeout(() => this._open(), this._retry);
        this._retry = Math.min(this._retry * 2, 10000);
      }
    };
  }
}

// ---- names of the fields a job of any kind carries ----------------------------------------
/** The value of the field ending in `suffix` (TrainingJobName, ProcessingJobStatus, ...). */
export function field(row: Json, suffix: string): any {
  for (const key of Object.keys(row)) {
    if (key.endsWith(suffix) && !key.startsWith('nbsage:')) {
      return row[key];
    }
  }
  return undefined;
}

export const jobName = (row: Json): string => field(row, 'JobName');
export const jobStatus = (row: Json): string => field(row, 'JobStatus');
export const TERMINAL = ['Completed', 'Failed', 'Stopped'];
