/** Edit distance (Levenshtein), ignoring case: for turning a typo into "did you mean", never on a hot path. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      const substitution = previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min(substitution, previous[j]! + 1, current[j - 1]! + 1));
    }
    previous = current;
  }
  return previous[y.length]!;
}

/** Up to `count` of `known`, nearest to `name` first (ties in the order given). */
export function nearest(name: string, known: readonly string[], count: number): string[] {
  return known
    .map((candidate, order) => ({ candidate, order, distance: editDistance(candidate, name) }))
    .sort((a, b) => a.distance - b.distance || a.order - b.order)
    .slice(0, count)
    .map((c) => c.candidate);
}
