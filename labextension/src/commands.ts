/** The console's command ids (also usable from the command palette and by other extensions). */
export namespace CommandIDs {
  export const openConsole = 'nbsage:open-console';
  export const openJob = 'nbsage:open-job';
  export const stopJob = 'nbsage:stop-job';
  export const deploy = 'nbsage:deploy';
  export const openEndpoint = 'nbsage:open-endpoint';
  export const deleteEndpoint = 'nbsage:delete-endpoint';
  export const compare = 'nbsage:compare';
  export const insert = 'nbsage:insert-into-notebook';
}
