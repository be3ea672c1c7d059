/**
 * nbsage's JupyterLab console: a sidebar of jobs, endpoints and models, details in the main area,
 * a compare view, entries in the Running panel, and "Insert into notebook". It talks to the
 * nbsage.jupyter server extension (REST under /nbsage/api/ and its websocket of notices).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { IRunningSessionManagers, IRunningSessions } from '@jupyterlab/running';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import { EventStream, jobName, jobStatus, post, request, TERMINAL } from './api';
import { CommandIDs } from './commands';
import { CompareView } from './compare';
import { EndpointDetail } from './endpointdetail';
import { JobDetail } from './jobdetail';
import { ConsoleModel } from './model';
import { ConsoleSidebar } from './sidebar';
import { deploySnippet, ISnippetArgs, snippet } from './snippets';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161"><path d="M4 3h16a1 1 0 0 1 1 1v4H3V4a1 1 0 0 1 1-1zm-1 7h18v4H3zm0 6h18v4a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1z" opacity=".35"/><path d="M5 5h2v1H5zm0 7h2v1H5zm0 6h2v1H5zm4-13h9v1H9zm0 7h6v1H9zm0 6h8v1H9z"/></g></svg>`;
export const nbsageIcon = new LabIcon({ name: 'nbsage:console', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbsage-console:plugin',
  description: 'The nbsage console: training and processing jobs, models and endpoints.',
  autoStart: true,
  optional: [ILabShell, ILayoutRestorer, ICommandPalette, INotebookTracker, IRunningSessionManagers],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    running: IRunningSessionManagers | null
  ) => {
    const events = new EventStream();
    const model = new ConsoleModel(events);
    const { commands, shell } = app;

    const sidebar = new ConsoleSidebar(model, commands);
    sidebar.title.icon = nbsageIcon;
    shell.add(sidebar, 'left', { rank: 450 });
    restorer?.add(sidebar, 'nbsage-console');

    const opened = new Map<string, MainAreaWidget<Widget>>();
    const open = (key: string, make: () => Widget) => {
      let widget = opened.get(key);
      if (!widget || widget.isDisposed) {
        const content = make();
        widget = new MainAreaWidget({ content });
        widget.id = content.id;
        widget.title.label = content.title.label;
        widget.title.caption = content.title.caption;
        widget.title.icon = nbsageIcon;
        opened.set(key, widget);
        shell.add(widget, 'main');
      }
      shell.activateById(widget.id);
      return widget;
    };
    const fail = (title: string) => (e: Error) => showErrorMessage(title, e.message);

    commands.addCommand(CommandIDs.openConsole, {
      label: 'nbsage: Open the Console',
      execute: () => shell.activateById(sidebar.id)
    });
    commands.addCommand(CommandIDs.openJob, {
      label: args => `Open job ${args.name ?? ''}`,
      execute: args => open(`job:${args.name}`, () => new JobDetail(String(args.name), events, commands))
    });
    commands.addCommand(CommandIDs.openEndpoint, {
      label: args => `Open endpoint ${args.name ?? ''}`,
      execute: args =>
        open(`endpoint:${args.name}`, () => new EndpointDetail(String(args.name), events, commands))
    });
    commands.addCommand(CommandIDs.compare, {
      label: 'nbsage: Compare Jobs',
      execute: args => {
        const names = (args.names as string[]) || [];
        if (names.length < 2) {
          return showErrorMessage('Compare', 'Check two or more jobs in the nbsage panel first.');
        }
        return open(`compare:${names.join(',')}`, () => new CompareView(names));
      }
    });
    commands.addCommand(CommandIDs.stopJob, {
      label: args => `Stop job ${args.name ?? ''}`,
      execute: async args => {
        const name = String(args.name);
        if (!args.confirmed) {
          const answer = await showDialog({
            title: 'Stop job',
            body: `Stop ${name}? It gets SIGTERM now and SIGKILL after the grace period; it ends Stopped.`,
            buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop' })]
          });
          if (!answer.button.accept) {
            return;
          }
        }
        await post(`jobs/${encodeURIComponent(name)}/stop`).catch(fail(`Stop ${name}`));
      }
    });
    commands.addCommand(CommandIDs.deleteEndpoint, {
      label: args => `Delete endpoint ${args.name ?? ''}`,
      execute: async args => {
        const name = String(args.name);
        if (!args.confirmed) {
          const answer = await showDialog({
            title: 'Delete endpoint',
            body: `Delete ${name}? Its model server stops; the model stays.`,
            buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
          });
          if (!answer.button.accept) {
            return;
          }
        }
        await request(`endpoints/${encodeURIComponent(name)}`, { method: 'DELETE' }).catch(
          fail(`Delete ${name}`)
        );
        await model.refresh();
      }
    });
    commands.addCommand(CommandIDs.deploy, {
      label: args => `Deploy ${args.name ?? ''}`,
      execute: async args => {
        const name = String(args.name);
        const answer = await InputDialog.getText({
          title: `Deploy ${name}`,
          label: 'Endpoint name (empty: a generated one)',
          okLabel: 'Deploy'
        });
        if (!answer.button.accept) {
          return;
        }
        try {
          const endpoint = await post(`jobs/${encodeURIComponent(name)}/deploy`, {
            EndpointName: answer.value || undefined
          });
          await model.refresh();
          void commands.execute(CommandIDs.openEndpoint, { name: endpoint.EndpointName });
        } catch (e) {
          void showErrorMessage(`Deploy ${name}`, (e as Error).message);
        }
      }
    });
    commands.addCommand(CommandIDs.insert, {
      label: 'Insert into notebook',
      execute: args => {
        const code =
          args.action === 'deploy' ? deploySnippet(String(args.name)) : snippet(args as unknown as ISnippetArgs);
        const panel = notebooks?.currentWidget;
        if (!panel) {
          void navigator.clipboard?.writeText(code);
          Notification.info('No notebook is open: the code was copied to the clipboard.', { autoClose: 4000 });
          return;
        }
        const notebook = panel.content;
        NotebookActions.insertBelow(notebook);
        notebook.activeCell?.model.sharedModel.setSource(code);
        shell.activateById(panel.id);
      }
    });
    if (palette) {
      for (const command of [CommandIDs.openConsole, CommandIDs.compare]) {
        palette.addItem({ command, category: 'nbsage' });
      }
    }

    // ---- the Running panel: running jobs and endpoints, with shut-down buttons ----------------
    if (running) {
      const manager: IRunningSessions.IManager = {
        name: 'nbsage',
        running: () => [
          ...model.jobs
            .filter(j => !TERMINAL.includes(jobStatus(j)))
            .map(j => ({
              className: 'nbsage-running-job',
              context: 'nbsage job',
              open: () => void commands.execute(CommandIDs.openJob, { name: jobName(j) }),
              shutdown: () => void commands.execute(CommandIDs.stopJob, { name: jobName(j), confirmed: true }),
              icon: () => nbsageIcon,
              label: () => `job ${jobName(j)}`,
              labelTitle: () => `${jobName(j)}: ${jobStatus(j)} (${j.SecondaryStatus || ''})`,
              detail: () => jobStatus(j)
            })),
          ...model.endpoints.map(e => ({
            className: 'nbsage-running-endpoint',
            context: 'nbsage endpoint',
            open: () => void commands.execute(CommandIDs.openEndpoint, { name: e.EndpointName }),
            shutdown: () => void commands.execute(CommandIDs.deleteEndpoint, { name: e.EndpointName, confirmed: true }),
            icon: () => nbsageIcon,
            label: () => `endpoint ${e.EndpointName}`,
            labelTitle: () => `${e.EndpointName}: ${e.EndpointStatus}`,
            detail: () => e.EndpointStatus
          }))
        ],
        shutdownAll: async () => {
          const jobs = model.jobs.filter(j => !TERMINAL.includes(jobStatus(j)));
          await Promise.all([
            ...jobs.map(j => post(`jobs/${encodeURIComponent(jobName(j))}/stop`).catch(() => null)),
            ...model.endpoints.map(e =>
              request(`endpoints/${encodeURIComponent(e.EndpointName)}`, { method: 'DELETE' }).catch(() => null)
            )
          ]);
          await model.refresh();
        },
        refreshRunning: () => void model.refresh(),
        runningChanged: model.changed,
        shutdownLabel: 'Stop job / delete endpoint',
        shutdownAllLabel: 'Stop All',
        shutdownAllConfirmationText: 'Stop every running nbsage job and delete every nbsage endpoint?'
      };
      running.add(manager);
    }
    void labShell;
  }
};

export default plugin;
