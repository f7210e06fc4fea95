/**
 * The README is part of the product: its quick start must name commands that exist, the commands of
 * its second terminal must do what their comments say against a running firmware, and its register
 * map must be the one the firmware serves.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bootBase, bootRegisters, quantityMap } from '../firmware/modbus-service.js';
import { resetCauses } from '../firmware/boot-record.js';
import { parseBoards, selectBoard } from '../config/boards.js';
import { componentKinds } from '../config/component-kinds.js';
import { type CommandResult, program, startFirmware } from './helpers/processes.js';
import { requireOrSkip } from './helpers/requirements.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const boards = parseBoards(readFileSync(new URL('../boards.json', import.meta.url), 'utf8'), 'boards.json');

describe('README', () => {
  it('quick start is two commands, both npm scripts that exist', () => {
    const block = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = block.trim().split('\n').map((line) => line.replace(/#.*$/, '').trim());
    expect(commands).toEqual(['npm install && npm start', 'npm test']);
    expect(pkg.scripts.start).toBeDefined();
    expect(pkg.scripts.test).toBe('vitest run');
  });

  it('register map of the simulated appliance matches what the firmware serves', () => {
    const config = selectBoard(boards, 'sim-appliance');
    const rows = [...readme.matchAll(/^\| IR (\d+)-(\d+) \| (\S+) ([\w, ]+) \|$/gm)].filter((m) => Number(m[1]) >= 100);
    const documented = rows.flatMap((m) => m[4]!.split(', ').map((quantity, i) => ({ register: Number(m[1]) + 2 * i, component: m[3]!, quantity })));
    expect(documented).toEqual(quantityMap(config));
    const states = /^\| IR 0-(\d+) \| states of ([\w, -]+) \|$/m.exec(readme);
    expect(states?.[2]?.split(', ')).toEqual(config.components.map((c) => c.id));
  });

  it('documents the boot record registers where the firmware serves them, with its cause codes', () => {
    expect(bootRegisters).toBe(7);
    expect(readme).toContain(`| IR ${bootBase}-${bootBase + 1} | boot count,`);
    expect(readme).toContain(`| IR ${bootBase + 2}-${bootBase + 3} | uptime in s`);
    expect(readme).toContain(`| IR ${bootBase + 4} | last reset cause: ${resetCauses.map((cause, i) => `${i} ${cause}`).join(', ')} |`);
    expect(readme).toContain(`| IR ${bootBase + 5} | unclean resets`);
    expect(readme).toContain(`| IR ${bootBase + 6} | the reset-loop limit`);
    expect(readme).toContain(`| input registers (4) | ${bootBase} .. ${bootBase + bootRegisters - 1} | the boot record`);
  });

  it('lists the quantities of every component kind that reads any, in register order', () => {
    const paragraph = /Quantities per component kind, in register order: ([^]*?)\.\n/.exec(readme)?.[1] ?? '';
    const documented: Record<string, string[]> = {};
    for (const entry of paragraph.replace(/\n/g, ' ').split('; ')) {
      const match = /^(.+?) `([^`]+)`$/.exec(entry.trim());
      for (const kind of match?.[1]?.split(' and ') ?? []) documented[kind] = match![2]!.split(', ');
    }
    const expected = Object.fromEntries(
      Object.entries(componentKinds)
        .filter(([, spec]) => spec.quantities.length > 0)
        .map(([kind, spec]) => [kind, [...spec.quantities]]),
    );
    expect(documented).toEqual(expected);
  });
});

describe('README quick start, second terminal', () => {
  it('runs each command against a firmware process (on ports 0) and gets what its comment says', { timeout: 120_000 }, async (ctx) => {
    for (const tool of ['mbpoll', 'curl']) requireOrSkip(ctx, (await program('sh', ['-c', `command -v ${tool}`])).code === 0 ? undefined : `${tool} is not installed`);
    const block = /In a second terminal:\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const lines = block.trim().split('\n').map((line) => ({ command: line.replace(/#.*$/, '').trim(), comment: /#\s*(.*)$/.exec(line)?.[1] ?? '' }));
    expect(lines.map((l) => l.command.split(' ')[0])).toEqual(['alias', 'handcheck', 'mbpoll', 'handcheck', 'handcheck', 'curl']);
    // The board clock at a quarter of real time: the fault's 10 s, paced for a person, then outlast the
    // commands, each a process that can take seconds to start on a loaded machine.
    const fw = await startFirmware(['--log-level', 'silent', '--sim-speed', '0.25']);
    try {
      // The README's default ports, moved to the ones this firmware got.
      const [controlHost, controlPort] = fw.control.split(':');
      const onPorts = (command: string): string =>
        command
          .replaceAll('127.0.0.1:1502', `127.0.0.1:${fw.port}`)
          .replaceAll('-p 1502 ', `-p ${fw.port} `)
          .replaceAll('127.0.0.1:9502', `${controlHost}:${controlPort}`);
      const alias = lines[0]!.command;
      const results: Array<{ command: string; comment: string; result: CommandResult }> = [];
      for (const { command, comment } of lines.slice(1)) {
        // The alias as a user's shell has it; `fault` reaches the control endpoint through HANDCHECK_CONTROL.
        const script = `shopt -s expand_aliases\ncd ${JSON.stringify(root)}\n${alias}\n${onPorts(command)}`;
        results.push({ command, comment, result: await program('env', [`HANDCHECK_CONTROL=${fw.control}`, 'bash', '-c', script]) });
      }
      const byComment = (start: string): CommandResult => results.find((r) => r.comment.startsWith(start))!.result;
      expect(byComment('up')).toMatchObject({ code: 0, stdout: expect.stringMatching(/ up /) });
      const states = byComment('component states');
      expect(states.code).toBe(0);
      // Eight input registers, each a component state; 1 is ok on a healthy board.
      expect([...states.stdout.matchAll(/^\[(\d+)\]:\s+(\d+)/gm)].map((m) => Number(m[2]))).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
      const injected = byComment('the SFP loses');
      expect(injected.code).toBe(0);
      expect(JSON.parse(injected.stdout)).toMatchObject({ target: 'uplink-sfp', kind: 'los' });
      expect(byComment('reset')).toMatchObject({ code: 3, stdout: expect.stringMatching(/ reset /) });
      const status = byComment('everything');
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ board: { id: 'sim-appliance' }, sim: { faults: [{ target: 'uplink-sfp', kind: 'los' }] } });
    } finally {
      await fw.stop();
    }
  });
});
