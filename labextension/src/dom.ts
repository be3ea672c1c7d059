/** Small DOM helpers: the console draws plain elements styled with JupyterLab's CSS variables. */
export function h(
  tag: string,
  attrs: { [key: string]: any } = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElement {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (key === 'class') {
      el.className = value;
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

export function time(iso?: string | null): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  return d.toLocaleString(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit'
  });
}

export function duration(seconds?: number | null): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const m = Math.floor(seconds / 60);
  if (m < 60) {
    return `${m} min ${seconds % 60} s`;
  }
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function number(value?: number | null): string {
  if (value === null || value === undefined) {
    return '';
  }
  return Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)
    ? value.toExponential(3)
    : String(Number(value.toPrecision(5)));
}

export function statusBadge(status: string, secondary?: string): HTMLElement {
  const text = secondary && secondary !== status ? `${status} · ${secondary}` : status;
  return h(
    'span',
    {
      class: `nbsage-status nbsage-status-${(status || '').toLowerCase()}`,
      title: text,
      dataset: { status }
    },
    text
  );
}
