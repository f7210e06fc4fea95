/**
 * The package's public surface (`import { ... } from 'handcheck'`), for firmware authors who put the
 * gate and the device-state manager in front of their own Node server: a deliberate, small set of
 * names, each re-exported from the room that owns it. Anything not here is internal and may change in
 * any release; what is here follows semver (CHANGELOG.md). Nothing in the tree imports this module.
 */
import { fileURLToPath } from 'node:url';

// Boards: the shipped boards.json, loading and choosing an entry.
export { loadBoards, parseBoards, selectBoard } from '../config/boards.js';
export type { BoardConfig, BoardsFile, GatePolicy, GatePolicyInput, ServiceConfig } from '../config/board-config.js';
export { gatePolicy } from '../config/gate-policy.js';
/** Absolute path of the boards.json this package ships (the simulated appliance and the Raspberry Pis). */
export const shippedBoardsFile = fileURLToPath(new URL('../../boards.json', import.meta.url));

// The board: real (Linux) or simulated, chosen from the entry.
export { openBoard } from '../app/board-select.js';
export type { OpenBoardOptions, OpenedBoard } from '../app/board-select.js';
export type { BoardHal } from '../hal/board.js';
export type { SimBoard } from '../sim/board.js';
export type { FaultSpec, FaultKind } from '../sim/faults.js';

// Components and the verdict.
export { DeviceStateManager } from '../firmware/device-state.js';
export type { ComponentState, ComponentStateName, DeviceStateManagerOptions } from '../firmware/device-state.js';
export type { Failure, Verdict } from '../firmware/verdict.js';

// The gate in front of the author's server.
export { createGate, ERR_APP_CHECK } from '../firmware/create-gate.js';
export type { CheckResult, CreateGateOptions, ServiceCheck } from '../firmware/create-gate.js';
export type { Gate, GateAction, GateDecision, GateStats } from '../firmware/gate/gate.js';

// Errors: match on `code` (docs/errors.md).
export { HandcheckError } from '../config/errors.js';
export { HalError } from '../hal/errors.js';
