/** Every output format runs the shared cases (format.case.ts), one line each. */
import { formatCases } from './format.case.js';

formatCases('json', { malformed: { text: '{\n  "a": 1,\n  "b" 2\n}\n', line: 3 } });
formatCases('yaml', { malformed: { text: 'a: 1\nb: [1, 2\nc: 3\n', line: 3 } });
formatCases('toml', { malformed: { text: 'a = 1\nb = = 2\n', line: 2 } });
formatCases('ini', { malformed: { text: 'a=1\n[broken\nb=2\n', line: 2 }, stringly: true, lineOriented: true });
formatCases('env', { malformed: { text: 'A=1\nnot a line\n', line: 2 }, stringly: true, lineOriented: true });
