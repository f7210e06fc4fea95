import { execFileSync } from 'node:child_process';

/**
 * End-to-end tests start the built CLI as a real process, so `npm test` builds first: a stale or
 * missing dist/ would test yesterday's code.
 */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
