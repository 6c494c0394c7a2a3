/** What plugins tapped on a HookMap: tapable has no public way to list a HookMap's keys. */
type TappedHook = { taps: readonly { name: string }[] };
const hookMapEntries = new WeakMap<object, Map<unknown, TappedHook>>();

/** Starts recording the hooks a HookMap creates; returns the recorder for its factory interceptor. */
export function recordHookMapEntries(hookMap: object): (key: unknown, hook: unknown) => void {
  const entries = new Map<unknown, TappedHook>();
  hookMapEntries.set(hookMap, entries);
  return (key, hook) => { entries.set(key, hook as TappedHook); };
}

/** The keys of a HookMap that plugins tapped, each with the names of its taps. */
export function tappedKeys(hookMap: object): Map<string, string[]> {
  const entries = hookMapEntries.get(hookMap) ?? new Map<unknown, TappedHook>();
  return new Map([...entries].filter(([, hook]) => hook.taps.length > 0).map(([key, hook]) => [String(key), hook.taps.map((tap) => tap.name)]));
}
