// `registration`: prints the Mutating- and ValidatingWebhookConfiguration for a configuration. The
// DaemonSet entries' matchConditions are generated from the configured rules (blast radius), so an
// install whose config differs from the shipped ones in rules, presets, confineCilium,
// kubeProxyReplacement or cilium.namespace applies this output instead of manifests/'s copy.
// Read-only: it talks to no cluster.

import { stringify } from 'yaml';
import { mutatingWebhookConfiguration, validatingWebhookConfiguration } from '../registration.js';
import { flagUsage, loadConfig, parseCommandFlags, parsePort, UsageError, type FlagSpecs } from './common.js';

const REGISTRATION_FLAGS = {
  config: { type: 'string', arg: 'FILE', help: ['YAML configuration whose rules the DaemonSet entries match (default: defaults)'] },
  namespace: {
    type: 'string',
    arg: 'NS',
    default: 'cilium-migration-guard',
    help: ['Namespace of the webhook and its Service (default cilium-migration-guard)'],
  },
  service: { type: 'string', arg: 'NAME', default: 'cilium-migration-guard', help: ['The Service in front of the webhook (default cilium-migration-guard)'] },
  'service-port': { type: 'string', arg: 'N', default: '443', help: ['Its port (default 443)'] },
  url: { type: 'string', arg: 'URL', help: ['Call the webhook at this https URL instead of the Service'] },
} as const satisfies FlagSpecs;

export const REGISTRATION_USAGE = flagUsage('registration', REGISTRATION_FLAGS);

/** The two configurations as one multi-document YAML text (caBundle left for the webhook or cert-manager to inject). */
export function registrationText(args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const parsed = parseCommandFlags(args, REGISTRATION_FLAGS, env);
  const flags = parsed.values as { config?: string; namespace: string; service: string; 'service-port': string; url?: string };
  const config = loadConfig(flags);
  if (flags.url !== undefined && !/^https:\/\/\S+$/.test(flags.url))
    throw new UsageError(`${parsed.label('url')} must be an https:// URL, got ${JSON.stringify(flags.url)}`);
  const endpoint = flags.url
    ? { url: flags.url }
    : { service: { namespace: flags.namespace, name: flags.service, port: parsePort(flags['service-port'], parsed.label('service-port'), 1) } };
  const options = { endpoint, ownNamespace: flags.namespace, config };
  return [mutatingWebhookConfiguration(options), validatingWebhookConfiguration(options)].map((doc) => stringify(doc, { lineWidth: 0 })).join('---\n');
}

export async function registrationCommand(args: string[]): Promise<number> {
  process.stdout.write(registrationText(args));
  return 0;
}
