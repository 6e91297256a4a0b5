import { AsyncLocalStorage } from "node:async_hooks";
import { Socket } from "node:net";

/** The lists of the socketsOpenedBy() calls whose asynchronous context this is (nested calls: every one's). */
const recording = new AsyncLocalStorage<readonly Socket[][]>();
/** Calls running; the hook on `Socket.prototype.connect` is in place while there is any. */
let running = 0;
let originalConnect: typeof Socket.prototype.connect | undefined;

/**
 * Every client socket connects through `Socket.prototype.connect`: `net.connect()` and `tls.connect()` alike (a
 * TLSSocket inherits it). Node's `net.client.socket` diagnostics channel, used before, only sees `net.connect()`,
 * so TLS connections (`rediss://`) went unseen.
 */
function hookConnect(): void {
  if (running++ > 0) return;
  const original = Socket.prototype.connect;
  originalConnect = original;
  Socket.prototype.connect = function connect(this: Socket, ...args: unknown[]) {
    const lists = recording.getStore();
    if (lists !== undefined) for (const list of lists) if (!list.includes(this)) list.push(this);
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof Socket.prototype.connect;
}

function unhookConnect(): void {
  if (--running > 0 || originalConnect === undefined) return;
  Socket.prototype.connect = originalConnect;
  originalConnect = undefined;
}

/**
 * Runs `work` and resolves with every TCP client socket (TLS ones included) opened in its asynchronous context: the
 * connections it made and those that callbacks, timers and promises started there made later while `work` ran
 * (reconnections, a Cluster client's topology refresh). Sockets other code of the process opens meanwhile are left
 * out, so a test can check that a close leaves none of *these* open (`socket.destroyed`) while other clients come
 * and go, which a count of the process' sockets could not. A call nested in another's work reports its sockets to
 * both.
 *
 * @example
 * const opened = await socketsOpenedBy(() => bus.subscribe("a", () => {}));
 * await bus.close();
 * expect(opened.filter((s) => !s.destroyed)).toEqual([]);
 */
export async function socketsOpenedBy(work: () => Promise<unknown>): Promise<Socket[]> {
  const opened: Socket[] = [];
  hookConnect();
  try {
    await recording.run([...(recording.getStore() ?? []), opened], work);
  } finally {
    unhookConnect();
  }
  return opened;
}
