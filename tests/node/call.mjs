// Drives the official Node.js SDK (tencentcloud-sdk-nodejs) for tests/test_node_sdk.py (issue 13).
// stdin: {"sdk": "<package dir>", "endpoint": "127.0.0.1:PORT", "secretId", "secretKey", "region",
//         "calls": [{"signMethod", "reqMethod", "action", "params"}]}
// stdout: one JSON array, per call {"response": {...}} or {"error": {"code", "message", "requestId"}}.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const job = JSON.parse(readFileSync(0, "utf8"));
// The tione service module holds the same `tione.v20211111.Client` the package root exports; requiring
// it alone spares loading every other product's client on each run.
const require = createRequire(import.meta.url);
const { tione } = require(`${job.sdk}/tencentcloud/services/tione`);

const results = [];
for (const call of job.calls) {
  const client = new tione.v20211111.Client({
    credential: { secretId: job.secretId, secretKey: job.secretKey },
    region: job.region,
    profile: {
      signMethod: call.signMethod,
      httpProfile: { endpoint: job.endpoint, protocol: "http://", reqMethod: call.reqMethod },
    },
  });
  try {
    results.push({ response: await client[call.action](call.params) });
  } catch (err) {
    results.push({ error: { code: err.code ?? "", message: err.message, requestId: err.requestId ?? "" } });
  }
}
process.stdout.write(JSON.stringify(results));
