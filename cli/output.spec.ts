import { stripControls } from './output';

describe('stripControls: text from tasks reaches the terminal without control sequences', () => {
  it('given CSI sequences (colours, cursor moves, screen clears), when shown, then they are removed and the text stays', () => {
    expect(stripControls('\u001b[31mred\u001b[0m \u001b[2J\u001b[1;1Hhome \u009b2Kc1')).toBe('red home c1');
  });

  it('given OSC sequences (window title, hyperlinks, clipboard) ended by BEL or ST, when shown, then they are removed whole', () => {
    expect(stripControls('a\u001b]0;pwned\u0007b\u001b]8;;https://evil\u001b\\link\u001b]8;;\u001b\\c\u001b]52;c;ZXZpbA==\u0007d')).toBe('ablinkcd');
  });

  it('given other escapes and C0/C1 controls, when shown, then only newline and tab are kept', () => {
    expect(stripControls('x\u001bcy\u001b(Bz\r\u0008\u0000\u007f\u0085\n\tend')).toBe('xyz\n\tend');
  });

  it('given plain text with unicode, when shown, then it is unchanged', () => {
    expect(stripControls('héllo wörld — ✓\n')).toBe('héllo wörld — ✓\n');
  });
});
