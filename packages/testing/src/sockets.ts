import { AsyncLocalStorage } from "node:async_hooks";
import diagnostics from "node:diagnostics_channel";
import type { Socket } from "node:net";

/**
 * Runs `work` and resolves with every TCP client socket opened in its asynchronous context: the connections it made
 * and those that callbacks, timers and promises started there made later while `work` ran (reconnections, a Cluster
 * client's topology refresh). Sockets other code of the process opens meanwhile are left out, so a test can check
 * that a close leaves none of *these* open (`socket.destroyed`) while other clients come and go, which a count of the
 * process' sockets could not. Relies on Node's `net.client.socket` diagnostics channel.
 *
 * @example
 * const opened = await socketsOpenedBy(() => bus.subscribe("a", () => {}));
 * await bus.close();
 * expect(opened.filter((s) => !s.destroyed)).toEqual([]);
 */
export async function socketsOpenedBy(work: () => Promise<unknown>): Promise<Socket[]> {
  const context = new AsyncLocalStorage<true>();
  const opened: Socket[] = [];
  const record = (message: unknown) => {
    if (context.getStore() === true) opened.push((message as { socket: Socket }).socket);
  };
  diagnostics.subscribe("net.client.socket", record);
  try {
    await context.run(true, work);
  } finally {
    diagnostics.unsubscribe("net.client.socket", record);
  }
  return opened;
}
