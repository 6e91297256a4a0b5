import type { ChaosScenario } from "../scenario.js";
import { scriptPath } from "./script-path.js";

/** Every registered chaos scenario, in run order. Add new ones here. */
export const scenarios: readonly ChaosScenario[] = [scriptPath];
