// Reads the conformance results of one run.sh run and prints, per scenario, the result direct
// against the reference server, through capgate without a prefix and through capgate with the
// default `<id>__` prefix; then the suite's own failure output for every scenario that passes
// directly and fails through capgate. Exits 1 when a scenario that passes directly fails through
// capgate without a prefix, or differs with the prefix without being listed as name-dependent.
//
// usage: node report.mjs <results dir> <scenarios file> <name-dependent file>
//   <results dir>/<mode>/results/server-<scenario>-<time>/checks.json, and the runner's output in
//   <mode>/suite.log or (for a scenario run alone) <mode>/<scenario>.log and .rc, for mode in
//   direct, noprefix, prefix
//   <scenarios file>: one scenario a line; <name-dependent file>: "<scenario> <reason>" lines

import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [resultsDir, scenariosFile, nameDependentFile] = process.argv.slice(2);
const lines = (file) =>
  readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const scenarios = lines(scenariosFile);
const nameDependent = new Map(
  lines(nameDependentFile).map((l) => {
    const space = l.indexOf(' ');
    return space < 0 ? [l, ''] : [l.slice(0, space), l.slice(space + 1).trim()];
  })
);
const MODES = [
  ['direct', 'direct'],
  ['noprefix', 'through capgate (no prefix)'],
  ['prefix', 'through capgate (prefix)'],
];

/** The runner's output for one scenario: its own log, else its part of the suite's log. */
function logOf(mode, scenario) {
  const own = join(resultsDir, mode, `${scenario}.log`);
  if (existsSync(own)) return readFileSync(own, 'utf8');
  const suite = join(resultsDir, mode, 'suite.log');
  if (!existsSync(suite)) return '';
  const parts = readFileSync(suite, 'utf8').split(/^(?==== Running scenario: )/m);
  return parts.find((p) => p.startsWith(`=== Running scenario: ${scenario} ===`)) ?? '';
}

/** One scenario's outcome in one mode: passed (no FAILURE check), its checks, and why if none. */
function outcome(mode, scenario) {
  const dir = join(resultsDir, mode, 'results');
  const rcFile = join(resultsDir, mode, `${scenario}.rc`);
  const rc = existsSync(rcFile) ? readFileSync(rcFile, 'utf8').trim() : '';
  const log = logOf(mode, scenario);
  const named = new RegExp(`^server-${scenario.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{4}-\\d\\d-\\d\\dT[\\d-]+Z$`);
  const sub = existsSync(dir)
    ? readdirSync(dir).filter((d) => named.test(d) && existsSync(join(dir, d, 'checks.json'))).sort().pop()
    : undefined;
  if (!sub) {
    const why = rc === '124' ? 'timed out' : rc ? `runner exit ${rc}, no checks` : 'no checks';
    return { passed: false, checks: [], summary: `ERROR (${why})`, log };
  }
  const checks = JSON.parse(readFileSync(join(dir, sub, 'checks.json'), 'utf8'));
  const count = (s) => checks.filter((c) => c.status === s).length;
  const [ok, failed, warned] = [count('SUCCESS'), count('FAILURE'), count('WARNING')];
  const passed = failed === 0;
  let summary = passed ? `pass ${ok}/${ok}` : `FAIL ${ok}/${ok + failed}`;
  if (warned) summary += ` (${warned} warn)`;
  return { passed, checks, summary, log };
}

const results = new Map(
  scenarios.map((s) => [s, Object.fromEntries(MODES.map(([m]) => [m, outcome(m, s)]))])
);

// The table.
const rows = [['scenario', ...MODES.map(([, title]) => title)]];
for (const [scenario, r] of results) {
  rows.push([
    scenario + (nameDependent.has(scenario) ? ' *' : ''),
    ...MODES.map(([m]) => r[m].summary),
  ]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
const fmt = (row) => row.map((cell, i) => cell.padEnd(widths[i])).join(' | ');
const out = [];
out.push(fmt(rows[0]), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.slice(1).map(fmt));
const tally = (m) => [...results.values()].filter((r) => r[m].passed).length;
out.push(
  '',
  `passed: direct ${tally('direct')}/${scenarios.length}, ` +
    `no prefix ${tally('noprefix')}/${scenarios.length}, prefix ${tally('prefix')}/${scenarios.length}` +
    '   (* = name-dependent; "pass a/b" = a of b checks passed, warnings do not fail)'
);

// Verdicts.
const directFails = [];
const noPrefixRegressions = [];
const prefixDiffers = [];
const prefixUnexpected = [];
const staleNameDependent = [];
for (const [scenario, r] of results) {
  if (!r.direct.passed) {
    directFails.push(scenario);
    continue;
  }
  if (!r.noprefix.passed) noPrefixRegressions.push(scenario);
  if (!r.prefix.passed) {
    prefixDiffers.push(scenario);
    if (!nameDependent.has(scenario)) prefixUnexpected.push(scenario);
  } else if (nameDependent.has(scenario) && r.noprefix.passed && r.direct.checks.some((c) => c.status === 'SUCCESS')) {
    staleNameDependent.push(scenario);
  }
}
out.push('');
if (directFails.length) {
  out.push(`Fail directly against the reference server (not compared): ${directFails.join(', ')}`);
}
out.push(
  noPrefixRegressions.length
    ? `Pass directly, FAIL through capgate without a prefix (${noPrefixRegressions.length}): ${noPrefixRegressions.join(', ')}`
    : 'Every scenario that passes directly passes through capgate without a prefix.'
);
out.push(
  prefixDiffers.length
    ? `Differ with the default prefix (${prefixDiffers.length}): ` +
        prefixDiffers
          .map((s) => {
            if (nameDependent.has(s)) return s;
            return results.get(s).noprefix.passed ? `${s} (NOT name-dependent)` : `${s} (NOT name-dependent; fails without the prefix too)`;
          })
          .join(', ')
    : 'No scenario differs with the default prefix.'
);
if (staleNameDependent.length) {
  out.push(`Listed as name-dependent but pass with the prefix: ${staleNameDependent.join(', ')}`);
}

// The suite's own failure output for every scenario that passes directly and fails through capgate.
const details = [];
const clip = (text, n) => (text.length > n ? `${text.slice(0, n)}... (${text.length - n} more characters)` : text);
for (const [mode, title] of MODES.slice(1)) {
  for (const [scenario, r] of results) {
    if (!r.direct.passed || r[mode].passed) continue;
    if (mode === 'prefix' && !r.noprefix.passed) continue; // already shown without the prefix
    details.push('', `--- ${scenario}, ${title}${mode === 'prefix' && nameDependent.has(scenario) ? ' (name-dependent: ' + nameDependent.get(scenario) + ')' : ''}`);
    const failures = r[mode].checks.filter((c) => c.status === 'FAILURE');
    if (!failures.length) {
      details.push(`  ${r[mode].summary}; the runner's output ends with:`);
      details.push(...r[mode].log.trim().split('\n').slice(-15).map((l) => `  | ${l}`));
    }
    for (const check of failures) {
      details.push(`  ${check.name} (${check.id}): ${check.description}`);
      if (check.errorMessage) details.push(`    error: ${clip(check.errorMessage, 2000)}`);
      if (check.details) details.push(`    details: ${clip(JSON.stringify(check.details), 2000)}`);
    }
  }
}
if (details.length) {
  out.push('', 'Failures through capgate of scenarios that pass directly (the suite\'s checks):', ...details);
}

const text = out.join('\n');
writeFileSync(
  join(resultsDir, 'results.tsv'),
  ['scenario\tdirect\tnoprefix\tprefix', ...[...results].map(([s, r]) => [s, ...MODES.map(([m]) => r[m].summary)].join('\t'))].join('\n') + '\n'
);
console.log(text);
writeFileSync(join(resultsDir, 'report.txt'), `${text}\n`);

const failing = noPrefixRegressions.length > 0 || prefixUnexpected.length > 0;
console.log(
  `\nconformance through capgate (no prefix): ${tally('noprefix')} of ${scenarios.length} scenarios pass; ` +
    `${tally('direct')} pass directly; ${failing ? 'FAILED' : 'ok'}`
);
process.exit(failing ? 1 : 0);
