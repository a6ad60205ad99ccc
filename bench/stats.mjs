// From slices to figures: per (contender, route), ratios to the platform's baseline taken within
// each iteration, then the median and quartiles over iterations.
//
// A slice: { iteration, variant, route, rps, requests, cpuUs (server CPU µs per request), p50, p99,
// non2xx, socketErrors } or { iteration, variant, route, error }.

/** The baseline route a route is compared with: /untouched with /untouched, anything else with /hit. */
export const referenceRoute = (route) => (route === 'untouched' ? 'untouched' : 'hit');

/** Quantile q of sorted finite values, linearly interpolated (R's type 7, numpy's default). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/** { median, q1, q3, min, max, n } of the finite values. */
export function summary(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    min: sorted.length > 0 ? sorted[0] : NaN,
    max: sorted.length > 0 ? sorted[sorted.length - 1] : NaN,
    n: sorted.length,
  };
}

/** The interceptor floor and the guard floor: what a route of ours costs above each, paired per iteration. */
const FLOORS = { interceptor: 'floor', guard: 'floor-guard' };

/**
 * plan: [{ name, platform, kind, routes, reference? }]. Returns stats[name][route] = { ratio, cpuUs, rps (each a
 * summary over iterations), p50, p99 (medians, ms), errors, failedSlices, overFloorUs? }.
 */
export function analyse(slices, plan) {
  const at = new Map(); // `${iteration} ${variant} ${route}` → slice
  for (const s of slices) if (s.error === undefined) at.set(`${s.iteration} ${s.variant} ${s.route}`, s);
  const iterations = [...new Set(slices.map((s) => s.iteration))].sort((a, b) => a - b);
  const stats = {};
  for (const { name, platform, kind, routes, reference } of plan) {
    stats[name] = {};
    for (const route of routes) {
      const mine = iterations.map((i) => at.get(`${i} ${name} ${route}`));
      // Against the platform's baseline; a contender with a reference of its own, against it, route for route.
      const base = iterations.map((i) => at.get(reference === undefined ? `${i} ${platform}/baseline ${referenceRoute(route)}` : `${i} ${reference} ${route}`));
      const ratios = mine.map((m, k) => (m && base[k] ? m.rps / base[k].rps : NaN));
      const own = mine.filter(Boolean);
      const entry = {
        ratio: summary(ratios),
        ratios,
        cpuUs: summary(own.map((m) => m.cpuUs)),
        rps: summary(own.map((m) => m.rps)),
        p50: summary(own.map((m) => m.p50)).median,
        p99: summary(own.map((m) => m.p99)).median,
        errors: own.reduce((n, m) => n + m.non2xx, 0) + own.filter((m) => m.socketErrors).length,
        failedSlices: slices.filter((s) => s.variant === name && s.route === route && s.error !== undefined).length,
      };
      if (kind === 'ours') {
        entry.overFloorUs = {};
        for (const [floorKind, floorName] of Object.entries(FLOORS)) {
          const floor = iterations.map((i) => at.get(`${i} ${platform}/${floorName} hit`));
          entry.overFloorUs[floorKind] = summary(mine.map((m, k) => (m && floor[k] ? m.cpuUs - floor[k].cpuUs : NaN)));
        }
      }
      stats[name][route] = entry;
    }
  }
  return stats;
}
