// `npm run local`: a real local cluster to poke with kubectl. Starts etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager and kwok (fake nodes), installs the Cilium CRDs, runs the
// webhook and the reaper (acting mode) against it, registers the webhooks cluster-wide, applies
// three upstream DaemonSets through the webhook (aws-node, Cilium's agent, node-exporter) and
// prints where the DaemonSet controller put their pods, prints what to try, and stays in the
// foreground. Ctrl-C, SIGTERM or `npm run local:down` stops every process it started.

import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sleep, startControlPlane, type ControlPlane } from './controlplane.js';
import { installCiliumCrds, ROOT, startGuard, startReaper, type Guard, type ReaperProcess } from './guard.js';
import { applyDaemonSetFixture, createFixtureServiceAccounts, waitForDaemonSetOn } from './workloads.js';

const LOCAL = join(ROOT, '.local');
const PID_FILE = join(LOCAL, 'local.pid');
const KUBECONFIG = join(LOCAL, 'kubeconfig');
/** A link to the API server's audit log (in the control plane's temp dir), where the webhook's auditAnnotations land. */
const AUDIT_LOG = join(LOCAL, 'audit.log');
/** Prints the webhook's auditAnnotations on pods from it (the README shows its output). */
const AUDIT_GREP = `grep -o '"pods\\.cilium-migration-guard\\.io/[a-z]*":"[^"]*"' .local/audit.log`;

const NODES = [
  { name: 'kwok-legacy-1' },
  { name: 'kwok-legacy-2' },
  { name: 'kwok-cilium-ready', labels: { cni: 'cilium' } },
  { name: 'kwok-cilium-pending', labels: { cni: 'cilium' } },
];
const LEGACY_NODES = ['kwok-legacy-1', 'kwok-legacy-2'];
const MIGRATED_NODES = ['kwok-cilium-ready', 'kwok-cilium-pending'];
/** Applied through the webhook at start-up, and where the DaemonSet controller must put their pods. */
const DAEMONSETS = [
  { fixture: 'aws-node', namespace: 'kube-system', name: 'aws-node', nodes: LEGACY_NODES },
  { fixture: 'cilium', namespace: 'kube-system', name: 'cilium', nodes: MIGRATED_NODES },
  { fixture: 'node-exporter', namespace: 'monitoring', name: 'node-exporter', nodes: [...LEGACY_NODES, ...MIGRATED_NODES] },
];

function log(line: string): void {
  process.stderr.write(`[local] ${line}\n`);
}

async function down(): Promise<number> {
  if (!existsSync(PID_FILE)) {
    log('no local cluster is running (no .local/local.pid)');
    return 0;
  }
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    log(`process ${pid} is gone; removing the stale pid file`);
    rmSync(PID_FILE, { force: true });
    return 0;
  }
  for (let i = 0; i < 100; i++) {
    await sleep(200);
    try {
      process.kill(pid, 0);
    } catch {
      log('stopped');
      return 0;
    }
  }
  log(`process ${pid} did not stop within 20 s`);
  return 1;
}

/**
 * Cilium's agent (a DaemonSet pod, Ready as soon as kwok runs it) registers its CiliumNode when it
 * starts; kwok runs no agent, so this writes it, for the one node where Cilium is to be ready.
 */
async function registerCiliumNode(cp: ControlPlane, node: string): Promise<void> {
  const ciliumNode = { apiVersion: 'cilium.io/v2', kind: 'CiliumNode', metadata: { name: node }, spec: { ipam: { podCIDRs: ['10.245.1.0/24'] } } };
  await cp.kubectl(['apply', '-f', '-'], { input: stringify(ciliumNode) });
}

/** Applies DAEMONSETS through the webhook and waits for their pods; returns kubectl's output. */
async function deployAgents(cp: ControlPlane): Promise<string> {
  const out: string[] = [];
  for (const ds of DAEMONSETS) {
    const r = await applyDaemonSetFixture(cp, ds.fixture);
    out.push(`$ kubectl apply -f test/fixtures/daemonsets/${ds.fixture}.yaml`, ...`${r.stderr}${r.stdout}`.trim().split('\n'));
  }
  for (const ds of DAEMONSETS) await waitForDaemonSetOn(cp, ds.namespace, ds.name, ds.nodes);
  const pods = await cp.kubectl(['get', 'pods', '-A', '-o', 'wide']);
  out.push('$ kubectl get pods -A -o wide', ...pods.stdout.trimEnd().split('\n'));
  return out.join('\n');
}

function instructions(cp: ControlPlane, guard: Guard, reaper: ReaperProcess, agents: string): string {
  return `
cilium-migration-guard is running against a local Kubernetes ${cp.server}
  webhook:    ${guard.url}   (log: ${guard.logPath})
  reaper:     ${reaper.url}/metrics   (acting mode, leader election; log: ${reaper.logPath})
  kubeconfig: .local/kubeconfig (admin)
  audit log:  .local/audit.log   (-> ${cp.auditLogPath}, the API server's; removed when the cluster stops)

Three upstream DaemonSets were applied through the webhook; the DaemonSet controller put the old
CNI's agent on legacy nodes only, Cilium's on migrated (cni=cilium) nodes only, node-exporter on all:

${agents}

Try:
  export KUBECONFIG=$PWD/.local/kubeconfig PATH=$PWD/.local/bin:$PATH
  kubectl get nodes -L cni
  # A pod placed on a migrated node where Cilium is not ready is refused:
  kubectl run web --image=nginx --overrides='{"spec":{"nodeName":"kwok-cilium-pending"}}'
  # The denial's auditAnnotations, as the API server wrote them to its audit log:
  ${AUDIT_GREP}
  # ...and admitted where Cilium is ready:
  kubectl run web --image=nginx --overrides='{"spec":{"nodeName":"kwok-cilium-ready"}}'
  # Another old CNI's DaemonSet is kept off migrated nodes too (see the Warning line):
  kubectl apply -f test/fixtures/daemonsets/calico-node.yaml
  kubectl get pods -n kube-system -l k8s-app=calico-node -o wide
  kubectl get ds -n kube-system calico-node -o jsonpath='{.spec.template.spec.affinity.nodeAffinity}'; echo
  # Migrating a node: the DaemonSet controller takes the old CNI's agents off it and starts Cilium's there:
  kubectl label node kwok-legacy-2 cni=cilium
  kubectl get pods -n kube-system -o wide
  # A pod left to the scheduler waits for Cilium (FailedScheduling shows why):
  kubectl run sched --image=nginx --overrides='{"spec":{"nodeSelector":{"cni":"cilium"},"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["kwok-cilium-pending"]}]}]}}}}}'
  kubectl get events --field-selector reason=FailedScheduling
  # What the reaper would act on, per migrated node (read-only):
  node_modules/.bin/node dist/cli.js report

Stop with Ctrl-C or: npm run local:down
`;
}

async function up(): Promise<void> {
  if (existsSync(PID_FILE)) {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    try {
      process.kill(pid, 0);
      throw new Error(`a local cluster is already running (pid ${pid}); stop it with npm run local:down`);
    } catch (err) {
      if ((err as Error).message.startsWith('a local cluster')) throw err;
    }
  }
  mkdirSync(join(LOCAL, 'bin'), { recursive: true });
  writeFileSync(PID_FILE, `${process.pid}\n`);

  let cp: ControlPlane | undefined;
  let guard: Guard | undefined;
  let reaper: ReaperProcess | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log('stopping every process started here');
    await reaper?.stop().catch(() => {});
    await guard?.stop().catch(() => {});
    await cp?.stop().catch(() => {});
    rmSync(AUDIT_LOG, { force: true }); // its target went with the control plane's temp dir
    rmSync(PID_FILE, { force: true });
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    log(
      'building (first run) or reusing the cached control-plane binaries, then starting etcd, kube-apiserver, kube-scheduler, kube-controller-manager and kwok',
    );
    cp = await startControlPlane({ nodes: NODES, log });
    copyFileSync(cp.kubeconfigPath, KUBECONFIG);
    rmSync(AUDIT_LOG, { force: true });
    symlinkSync(cp.auditLogPath, AUDIT_LOG);
    rmSync(join(LOCAL, 'bin', 'kubectl'), { force: true });
    symlinkSync(join(cp.binDir, 'kubectl'), join(LOCAL, 'bin', 'kubectl'));
    await installCiliumCrds(cp);
    // Every fixture's namespace and ServiceAccount, as its upstream manifest creates them: any
    // `kubectl apply -f test/fixtures/daemonsets/...` gets pods.
    await createFixtureServiceAccounts(cp);
    guard = await startGuard(cp, { dir: cp.dir });
    await guard.register();
    await registerCiliumNode(cp, 'kwok-cilium-ready');
    const agents = await deployAgents(cp);
    reaper = await startReaper(cp, { dir: cp.dir });
    process.stdout.write(instructions(cp, guard, reaper, agents));
  } catch (err) {
    log(`failed: ${(err as Error).message}`);
    await stop(1);
  }
  // Stay in the foreground; a dead webhook or reaper ends the session rather than leaving a broken cluster.
  const exited = await Promise.race([
    guard!.child.exited.then((code) => ({ what: 'webhook', code, log: guard!.logPath })),
    reaper!.child.exited.then((code) => ({ what: 'reaper', code, log: reaper!.logPath })),
  ]);
  if (!stopping) {
    log(`the ${exited.what} exited (${exited.code}); see ${exited.log}`);
    await stop(1);
  }
}

const command = process.argv[2] ?? 'up';
if (command === 'down') process.exit(await down());
else if (command === 'up') await up();
else {
  log(`unknown command ${command}: use up or down`);
  process.exit(2);
}
