import { classifyScriptEnd } from './script-end';

describe('classifyScriptEnd: the script ended the run, or the platform killed it', () => {
  it('given a script that exited by itself (its container still running), then the exit code is the verdict', () => {
    expect(classifyScriptEnd({ exitCode: 0, container: 'running', oomKilled: false })).toEqual({ by: 'script', outcome: 'succeeded' });
    expect(classifyScriptEnd({ exitCode: 3, container: 'running', oomKilled: false })).toEqual({
      by: 'script',
      outcome: 'failed',
      reason: 'exit-code',
      exitCode: 3,
    });
  });

  it('given a script that killed itself with SIGKILL (exit 137, container running), then it is the script’s own failure', () => {
    expect(classifyScriptEnd({ exitCode: 137, container: 'running', oomKilled: false })).toEqual({
      by: 'script',
      outcome: 'failed',
      reason: 'exit-code',
      exitCode: 137,
    });
  });

  it('given a script OOM-killed inside its memory limit, then it is an oom failure, whatever happened to the container', () => {
    for (const container of ['running', 'stopped'] as const) {
      expect(classifyScriptEnd({ exitCode: 137, container, oomKilled: true })).toEqual({ by: 'script', outcome: 'failed', reason: 'oom', exitCode: 137 });
    }
  });

  it('given exit 137 or 143 while the container was stopped, removed, or the engine went away, then the platform killed it', () => {
    for (const container of ['stopped', 'missing', 'engine-down'] as const) {
      for (const exitCode of [137, 143, 1]) {
        const verdict = classifyScriptEnd({ exitCode, container, oomKilled: false });
        expect(verdict.by).toBe('platform');
        if (verdict.by === 'platform') expect(verdict.detail).toContain(`exit status ${exitCode} is not the script's own`);
      }
    }
  });

  it('given a run that ended without an exit code (stream broken, end marker never written), then the platform ended it', () => {
    for (const container of ['running', 'stopped', 'missing', 'engine-down'] as const) {
      expect(classifyScriptEnd({ exitCode: undefined, container, oomKilled: false }).by).toBe('platform');
    }
  });

  it('given a script that exited 0 before the container went down, then it succeeded (its work is done)', () => {
    expect(classifyScriptEnd({ exitCode: 0, container: 'stopped', oomKilled: false })).toEqual({ by: 'script', outcome: 'succeeded' });
  });
});
