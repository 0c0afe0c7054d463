// The floor: the least any correct Node webhook does. HTTP/2 over TLS (h2 via ALPN, as the API
// server calls a webhook), read the body, JSON.parse the AdmissionReview, answer allowed with the
// uid. No framework, no logging, no metrics. Run with the same pinned runtime as the webhook:
//   node_modules/.bin/node bench/floor-server.mjs CERT KEY
// Prints "listening PORT" on stdout once it listens on 127.0.0.1; stops on SIGTERM.

import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';

const [certFile, keyFile] = process.argv.slice(2);
const server = createSecureServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), allowHTTP1: true });
server.on('request', (req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let uid;
    try {
      uid = JSON.parse(Buffer.concat(chunks).toString('utf8')).request.uid;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":"bad AdmissionReview"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } }));
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
