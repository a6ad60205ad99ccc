// The Markdown section of RESULTS.md written by `npm run bench`, from analyse()'s figures.
import { fmt } from './lib.mjs';

/** The performance targets: median ratios to the platform's baseline. */
const TARGETS = {
  fastify: { untouched: 0.97, memory: { read: 0.5, hit: 0.47 }, cookie: { read: 0.44, hit: 0.38 }, redis: { hit: 0.33 } },
  express: { untouched: 0.97, memory: { read: 0.83, hit: 0.82 }, cookie: { read: 0.8, hit: 0.78 }, redis: { hit: 0.74 } },
};
const PLATFORMS = { fastify: 'Fastify', express: 'Express' };
const ALL_ROUTES = ['hit', 'read', 'untouched'];
const MiB = 2 ** 20;

const iqr = (s) => `${fmt.ratio(s.median)} (${fmt.ratio(s.q1)}–${fmt.ratio(s.q3)})`;
const usIqr = (s) => `${fmt.us(s.median)} (${fmt.us(s.q1)} … ${fmt.us(s.q3)})`;

const isGraphql = (v) => v.kind === 'graphql' || v.kind === 'graphql-baseline';

function contenderTable(platform, plan, stats, meta) {
  const rows = plan.filter((v) => v.platform === platform && !isGraphql(v));
  const routes = ALL_ROUTES.filter((r) => rows.some((v) => v.routes.includes(r)));
  const out = [
    `| ${PLATFORMS[platform]} contender | ${routes.map((r) => `\`/${r}\``).join(' | ')} | RSS MiB at the end |`,
    `|---|${routes.map(() => '---:').join('|')}|---:|`,
  ];
  for (const v of rows) {
    const cells = routes.map((route) => {
      const s = stats[v.name]?.[route];
      if (s === undefined || s.cpuUs.n === 0) return '';
      const cpu = `${fmt.fixed(s.cpuUs.median)} µs`;
      if (v.kind === 'baseline') return `**${fmt.int(s.rps.median)} req/s** · ${cpu}`;
      return `${iqr(s.ratio)} · ${cpu}`;
    });
    const label = v.kind === 'baseline' || v.kind === 'control' || v.kind === 'floor' ? v.label : `**${v.label}**`;
    out.push(`| ${label} | ${cells.join(' | ')} | ${fmt.fixed(meta.rssEnd[v.name] / MiB, 0)} |`);
  }
  return out.join('\n');
}

/** GraphQL: each driver with nest-sessions against the same driver without sessions, operation for operation. */
function graphqlTable(plan, stats, meta) {
  const rows = plan.filter(isGraphql);
  if (rows.length === 0) return '';
  const out = [
    '| GraphQL contender | mutation `hit` (writes the session) | query `read` (reads it) | RSS MiB at the end |',
    '|---|---:|---:|---:|',
  ];
  for (const platform of Object.keys(PLATFORMS)) {
    for (const v of rows.filter((row) => row.platform === platform)) {
      const cells = ['hit', 'read'].map((route) => {
        const s = stats[v.name]?.[route];
        if (s === undefined || s.cpuUs.n === 0) return '';
        const cpu = `${fmt.fixed(s.cpuUs.median)} µs`;
        return v.kind === 'graphql-baseline' ? `**${fmt.int(s.rps.median)} req/s** · ${cpu}` : `${iqr(s.ratio)} · ${cpu}`;
      });
      const label = v.kind === 'graphql-baseline' ? v.label : `**${v.label}**`;
      out.push(`| ${PLATFORMS[platform]}: ${label} | ${cells.join(' | ')} | ${fmt.fixed(meta.rssEnd[v.name] / MiB, 0)} |`);
    }
  }
  return out.join('\n');
}

function floorTable(plan, stats) {
  const ours = plan.filter((v) => v.kind === 'ours');
  if (ours.length === 0) return '';
  const out = [
    '| nest-sessions route | over the interceptor floor | over the guard floor |',
    '|---|---:|---:|',
  ];
  for (const v of ours) {
    for (const route of v.routes.filter((r) => r !== 'untouched')) {
      const over = stats[v.name]?.[route]?.overFloorUs;
      if (over === undefined || (over.interceptor.n === 0 && over.guard.n === 0)) continue;
      out.push(`| ${v.name} \`/${route}\` | ${usIqr(over.interceptor)} | ${usIqr(over.guard)} |`);
    }
  }
  return out.length > 2 ? out.join('\n') : '';
}

function targetChecks(plan, stats) {
  const lines = [];
  const check = (ok, text) => lines.push(`- ${ok ? '✅' : '❌'} ${text}`);
  const ratio = (name, route) => stats[name]?.[route]?.ratio.median;
  for (const platform of Object.keys(PLATFORMS)) {
    const ours = plan.filter((v) => v.platform === platform && v.kind === 'ours');
    if (ours.length === 0) continue;
    const peers = plan.filter((v) => v.platform === platform && v.kind === 'peer');
    const T = TARGETS[platform];
    lines.push(`\n**${PLATFORMS[platform]}**\n`);
    for (const v of ours) {
      const r = (route) => ratio(v.name, route);
      if (Number.isFinite(r('untouched'))) check(r('untouched') >= T.untouched, `${v.name} /untouched ${fmt.ratio(r('untouched'))} ≥ ${T.untouched}`);
      for (const route of ['read', 'hit']) {
        const target = T[v.ours]?.[route];
        if (target !== undefined && Number.isFinite(r(route))) check(r(route) >= target, `${v.name} /${route} ${fmt.ratio(r(route))} ≥ ${target}`);
      }
      for (const route of ['hit', 'untouched']) {
        if (!Number.isFinite(r(route))) continue;
        // A library opened per call inside the handler has no app-wide cost to compare on /untouched.
        const best = peers
          .filter((p) => Number.isFinite(ratio(p.name, route)) && !(route === 'untouched' && p.perCall))
          .map((p) => [p.name, ratio(p.name, route)])
          .sort((a, b) => b[1] - a[1])[0];
        if (best) check(r(route) > best[1], `${v.name} /${route} ${fmt.ratio(r(route))} beats every peer (best: ${best[0]} ${fmt.ratio(best[1])})`);
      }
    }
    const memory = stats[`${platform}/ns-memory`];
    const secure = ratio('fastify/secure-session', 'read');
    if (platform === 'fastify' && memory?.read && Number.isFinite(secure)) {
      check(memory.read.ratio.median >= secure, `fastify/ns-memory /read ${fmt.ratio(memory.read.ratio.median)} ≥ @fastify/secure-session /read ${fmt.ratio(secure)}`);
    }
    for (const [route, limit] of [['read', 3], ['hit', 5]]) {
      const over = memory?.[route]?.overFloorUs?.interceptor;
      if (over?.n > 0) check(over.median <= limit, `${platform}/ns-memory /${route}: ${fmt.us(over.median)} µs of server CPU over Nest's interceptor floor (paired per iteration, median) ≤ ${limit} µs`);
    }
  }
  return lines.join('\n');
}

function absoluteTable(plan, stats) {
  const out = [
    '| contender | route | req/s median (IQR) | latency p50 / p99 ms | server CPU µs/req (IQR) | non-2xx, socket errors, failed slices |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const v of plan) {
    for (const route of v.routes) {
      const s = stats[v.name]?.[route];
      if (s === undefined) continue;
      out.push(`| ${v.name} | /${route} | ${fmt.int(s.rps.median)} (${fmt.int(s.rps.q1)}–${fmt.int(s.rps.q3)}) | ${fmt.fixed(s.p50, 2)} / ${fmt.fixed(s.p99, 2)} | ${fmt.fixed(s.cpuUs.median)} (${fmt.fixed(s.cpuUs.q1)}–${fmt.fixed(s.cpuUs.q3)}) | ${s.errors + s.failedSlices} |`);
    }
  }
  return out.join('\n');
}

/** meta: see run.mjs (date, machine, versions, wrk, config, loads, memory, idle, rssEnd, skipped, elapsedMs, rawFile, note). */
export function report(plan, stats, meta) {
  const c = meta.config;
  const idle = Object.entries(meta.idle).sort((a, b) => b[1] - a[1]);
  const idleTotal = idle.reduce((n, [, pct]) => n + pct, 0);
  const platforms = Object.keys(PLATFORMS).filter((p) => plan.some((v) => v.platform === p));
  const out = [`## \`npm run bench\` — ${meta.date}`, ''];
  if (c.quick || c.iterations < 15) {
    out.push(`> **${c.quick ? 'Quick mode' : `${c.iterations} iterations`}: a smoke check of the harness, not figures to decide on** (the method needs ≥ 15 iterations of ${c.slice} s slices).`, '');
  }
  out.push(
    `- Machine: ${meta.machine}; Node ${meta.versions.node}; NestJS ${meta.versions['@nestjs/core']} (express ${meta.versions.express}, fastify ${meta.versions.fastify}); nest-sessions ${meta.versions['nest-sessions']}.`,
    `- Method: all ${plan.length} servers up at once, each pinned to core ${c.serverCpu} (\`taskset\`) and idle unless loaded; ${meta.wrk} with 1 thread and ${c.connections} connections on core ${c.loadCpu}. Every (contender, route) pair loaded for a ${c.slice} s slice, in a fresh random order each iteration, ${c.warmup > 0 ? `after one ${c.warmup} s warm-up slice per pair` : 'with no warm-up'}; ${meta.iterationsDone} iteration${meta.iterationsDone === 1 ? '' : 's'}. Each ratio is against the platform baseline's \`/hit\` (\`/untouched\` against its \`/untouched\`) measured in the same iteration; cells show the median and, in brackets, the quartiles over iterations. Server CPU µs per request: user + system time from \`/proc/<pid>/stat\` over each slice, divided by the requests wrk counted (median). Each app gets the session cookie of its first \`GET /hit\` on every request (no-session apps: a dummy cookie of the same size).`,
    `- Conditions: load average ${meta.loadBefore} before, ${meta.loadAfter} after (1/5/15 min). Memory: ${fmt.fixed(meta.memory.serversMiB, 0)} MiB resident in all servers at the end, ${fmt.fixed(meta.memory.availableBeforeGiB, 1)} GiB available before they started, ${fmt.fixed(meta.memory.availableEndGiB, 1)} GiB with all up. Idle servers' CPU while another was loaded: ${fmt.fixed(idleTotal, 2)}% of a core in all (most: ${idle.slice(0, 2).map(([n, pct]) => `${n} ${fmt.fixed(pct, 2)}%`).join(', ') || '—'}). ${meta.note}`.trimEnd(),
  );
  if (meta.skipped.length > 0) out.push(`- Skipped: ${meta.skipped.join('; ')}.`);
  out.push(`- Duration: ${(meta.elapsedMs / 60000).toFixed(1)} min. Raw figures: \`${meta.rawFile}\`.`, '');
  out.push('Each cell: **ratio** of requests per second to the baseline (median, quartiles) · **server CPU µs per request** (median). Higher ratios are better; 1.00 is free. The control (a second copy of the baseline app) shows what 1.00 looks like on this machine in this run; differences inside its quartiles are not resolved.');
  for (const platform of platforms) out.push('', contenderTable(platform, plan, stats, meta));
  const graphql = graphqlTable(plan, stats, meta);
  if (graphql) {
    out.push('', 'GraphQL (POST /graphql, JSON): each driver with nest-sessions (`@Session()` in the resolver, MemoryStore) against the same driver without sessions (the GraphQL baseline), operation for operation, in the same iteration: ratio (median, quartiles) · server CPU µs per request (median).', '', graphql);
  }
  const floors = floorTable(plan, stats);
  if (floors) {
    out.push('', "What nest-sessions adds above Nest's floors: server CPU µs per request, ours minus the floor's `/hit`, paired per iteration (median, quartiles).", '', floors);
  }
  out.push('', '### Targets', targetChecks(plan, stats));
  out.push('', '<details><summary>Absolute figures</summary>', '', absoluteTable(plan, stats), '', '</details>');
  out.push('', '<details><summary>Versions</summary>', '', '| package | version |', '|---|---|');
  for (const [k, v] of Object.entries(meta.versions)) out.push(`| ${k} | ${v} |`);
  out.push('', '</details>');
  return out.join('\n');
}
