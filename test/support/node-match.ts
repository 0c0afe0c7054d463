// A test oracle: does a pod spec's required node affinity and nodeSelector admit a node with these
// labels? Written from the Kubernetes API reference, independently of src/webhooks/affinity.ts.

type Labels = Record<string, string>;

interface Expr {
  key: string;
  operator: string;
  values?: string[];
}

function exprMatches(expr: Expr, labels: Labels): boolean {
  const has = Object.hasOwn(labels, expr.key);
  const value = labels[expr.key];
  const values = expr.values ?? [];
  switch (expr.operator) {
    case 'In':
      return has && values.includes(value!);
    case 'NotIn':
      return !has || !values.includes(value!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      if (!has || !/^-?\d+$/.test(value!) || values.length !== 1) return false;
      const [a, b] = [Number(value), Number(values[0])];
      return expr.operator === 'Gt' ? a > b : a < b;
    }
    default:
      return false;
  }
}

// matchFields only ever select metadata.name; the oracle's nodes are named "n".
function fieldMatches(expr: Expr): boolean {
  return exprMatches(expr, { 'metadata.name': 'n' });
}

export function podSpecAdmits(podSpec: any, labels: Labels): boolean {
  const selector: Labels = podSpec?.nodeSelector ?? {};
  if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  const terms = podSpec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms === undefined || terms === null) return true;
  return (terms as any[]).some((term) => {
    const exprs: Expr[] = term?.matchExpressions ?? [];
    const fields: Expr[] = term?.matchFields ?? [];
    if (exprs.length === 0 && fields.length === 0) return false;
    return exprs.every((e) => exprMatches(e, labels)) && fields.every((f) => fieldMatches(f));
  });
}
