// The environment of a machine with no cluster configured and no CMG_* settings, for tests that run
// the built CLI: a developer's KUBECONFIG or CMG_* variables must not change what a test sees.

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'KUBECONFIG' || key.startsWith('KUBERNETES_') || key.startsWith('CMG_')) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}
