/**
 * @coordis/demo — the game-scores API that shows every Coordis primitive across several replicas.
 * @packageDocumentation
 */
export { type AuditEvent, type BoardEntry, type BuildOptions, buildApp, type DemoMessage } from "./app.js";
export { DEFAULT_PORT, type DemoConfig, ENV_NAMES, loadConfig, randomToken } from "./config.js";
