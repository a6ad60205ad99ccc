/**
 * A list of secrets without the older ones (after the first) that are `undefined`: the form of
 * `[process.env.SECRET, process.env.OLD_SECRET]` when no rotation is under way. The first must be set.
 */
export function withoutUnsetOlder(list: readonly unknown[]): unknown[] {
  return list.filter((entry, index) => index === 0 || entry !== undefined);
}
