/**
 * The `ini` package reads any text without complaint (lines it does not understand are dropped,
 * a repeated key silently wins), so free-text INI output is checked line by line first: every line
 * is blank, a comment, a `[section]` header or a `key = value` pair, and no key is set twice within
 * its section — a repeated key is what an injected value looks like. Keys and section names
 * compare as `ini` reads them (trimmed, unquoted: `"admin"` is `admin`), and a carriage return
 * inside a line is refused: `ini` (like most readers) takes it as a line break, so it could start
 * a line nobody sees in an editor.
 */
import ini from 'ini';
import { OutputSyntaxError } from './errors.js';

export function checkIni(text: string): void {
  const seen = new Set<string>();
  let section = '';
  text.split('\n').forEach((raw, i) => {
    const lineNo = i + 1;
    const cr = raw.replace(/\r$/, '').indexOf('\r');
    if (cr >= 0) throw new OutputSyntaxError('a carriage return inside a line (INI readers take it as a line break)', lineNo, cr + 1);
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    if (line.startsWith('[')) {
      const m = /^\[(.+)\]\s*([;#].*)?$/.exec(line);
      if (!m) throw new OutputSyntaxError(`malformed section header '${line}'`, lineNo, 1);
      section = ini.unsafe(m[1]!);
      if (seen.has(`[${section}]`)) throw new OutputSyntaxError(`section [${section}] appears twice`, lineNo, 1);
      seen.add(`[${section}]`);
      return;
    }
    const eq = line.indexOf('=');
    const key = ini.unsafe(eq < 0 ? line : line.slice(0, eq));
    if (key === '') throw new OutputSyntaxError(`a value without a key: '${line}'`, lineNo, 1);
    if (key.endsWith('[]')) return; // array entries repeat by design
    const id = `${section}\u0000${key}`;
    if (seen.has(id)) throw new OutputSyntaxError(`key '${key}' is set twice${section ? ` in [${section}]` : ''}`, lineNo, 1);
    seen.add(id);
  });
}
