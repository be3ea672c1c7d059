/** The code "Insert into notebook" puts in a new cell: the magic or API call for the action. */
export interface ISnippetArgs {
  what: 'job' | 'endpoint' | 'model';
  name: string;
  kind?: string;
  url?: string;
}

const py = (s: string) => JSON.stringify(s);

export function snippet(args: ISnippetArgs): string {
  const { what, name } = args;
  if (what === 'endpoint') {
    return [
      'import nbsage',
      `predictor = nbsage.Predictor(${py(name)})`,
      '# predictor.predict(data); predictor.delete_endpoint() when done',
      ''
    ].join('\n').trim();
  }
  if (what === 'model') {
    return [
      'import nbsage',
      `model = nbsage.Model(${py(args.url || '')})`,
      '# predictor = model.deploy()'
    ].join('\n');
  }
  if (args.kind && args.kind !== 'training') {
    const cls = args.kind === 'processing' ? 'ProcessingJob' : null;
    return cls
      ? `import nbsage\njob = nbsage.${cls}(${py(name)})\njob.describe()`
      : `%load_ext nbsage\n%sm_describe ${name}`;
  }
  return `%load_ext nbsage\n%sm_logs ${name}\n# %sm_deploy ${name}`;
}

export function deploySnippet(name: string): string {
  return `%load_ext nbsage\n%sm_deploy ${name}`;
}
