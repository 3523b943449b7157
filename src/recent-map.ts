/**
 * Sets `key` as the newest entry of `map` and drops the oldest beyond `max`: a Map keeps its
 * insertion order, so the first key is the one set longest ago.
 */
export function setRecent<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}
