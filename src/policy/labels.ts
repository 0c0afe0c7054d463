// Label matching, as a Kubernetes equality-based selector: every key of `want` has that value in
// `have`. An empty selector matches everything (as in Kubernetes); a caller for which an empty
// selector must match nothing says so where it calls.

export function hasLabels(have: Readonly<Record<string, string>> | undefined, want: Readonly<Record<string, string>>): boolean {
  const labels = have ?? {};
  return Object.entries(want).every(([key, value]) => labels[key] === value);
}
